"""Runs one job on the worker thread: model, inputs, the backend's stream, sinks, events.

Whatever happens, the job ends with exactly one `done` or `error` event: this is the one
place a broad `except` turns an unexpected exception into an error event.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import sys
import time
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from daemon.audio.io import DEFAULT_MAX_INPUT_S, read_audio
from daemon.audio.types import Audio, AudioChunk
from daemon.backend import JobContext, MusicBackend, ProgressFn, StreamReport
from daemon.jam.gate import LiveGate
from daemon.jam.job import JamRun, JamSettings, snapshot_path
from daemon.jobs import Emit, Job
from daemon.paths import PathPolicy
from daemon.residency import ModelPool, release_memory
from daemon.seeds import draw_seed
from daemon.sinks.base import JobSink, SinkFactory
from daemon.tempo.positions import PositionMap
from daemon.tempo.service import TempoService
from daemon.tempo.take import TakeState
from protocol.audio_ref import AudioSource, InlineAudio
from protocol.errors import AudioTooLarge, Cancelled, OutOfMemory, RiffdError
from protocol.messages import Chunk, Continue, Done, Error, Generate, JamStart, MusicGenRequest, Progress, Started

log = logging.getLogger(__name__)

#: Least time between two progress events of a job (the last step is always reported).
PROGRESS_INTERVAL_S = 0.05


class JobRunner:
    """Turns a job into events; holds no per-job state between calls."""

    def __init__(self, pool: ModelPool, sink_factories: Sequence[SinkFactory] = (), *,
                 paths: PathPolicy | None = None, max_audio_s: float = DEFAULT_MAX_INPUT_S,
                 tempo: TempoService | None = None, jam: JamSettings | None = None,
                 gate: LiveGate | None = None) -> None:
        self._pool = pool
        self._tempo = tempo
        self._sink_factories = tuple(sink_factories)
        self._paths = paths
        self._max_audio_s = max_audio_s
        self._jam = jam or JamSettings()
        # Jams and renders share the CPU: a render yields between its steps while a jam is short of audio.
        self._gate = gate or LiveGate()

    def run(self, job: Job, emit: Emit) -> None:
        sinks: list[JobSink] = []
        out_of_memory: OutOfMemory | None = None
        failure: Error | None = None
        try:
            if job.stop_requested.is_set():
                raise job.stop_error
            if self._paths is not None:
                self._paths.model(job.model)  # again at run time: a link may have changed since
            with self._pool.use(job.model) as backend:
                seed = effective_seed(job)
                emit(job, Started(job=job.id, model=job.model, sample_rate=backend.sample_rate,
                                  channels=backend.audio_channels, seed=reported_seed(job, seed), re=job.re))
                for factory in self._sink_factories:
                    sink = factory(job, backend.sample_rate, backend.audio_channels)
                    if sink is not None:
                        sinks.append(sink)
                frames, report = self._stream(job, backend, sinks, emit, seed)
                path = None
                for sink in sinks:
                    path = sink.finish() or path
                sinks = []
                in_time = job.take.done_fields() if job.take is not None else {}
                done = Done(job=job.id, path=path, frames=frames, sample_rate=backend.sample_rate, re=job.re,
                            **in_time)
                emit(job, _with_report(done, report))
        except Cancelled as exc:
            # The backend raises Cancelled when asked to stop; say why it was asked.
            error = job.stop_error if job.stop_requested.is_set() else exc
            _abort(sinks)
            emit(job, Error(job=job.id, code=error.code, message=error.message, re=job.re))
        except RiffdError as exc:
            _abort(sinks)
            emit(job, Error(job=job.id, code=exc.code, message=exc.message, re=job.re))
        except Exception as exc:  # noqa: BLE001 - a bug in a backend must not take the daemon down
            _abort(sinks)
            if is_out_of_memory(exc):
                # Told after the memory is back (below): the traceback holds the job's tensors, so
                # nothing may keep it (a log record given `exc` would, in any handler that keeps records).
                out_of_memory = OutOfMemory(f"out of memory on {self._pool.device}: {_first_line(exc)}")
                log.error("job %s: %s", job.id, out_of_memory.message)
            else:
                # The traceback as text: a record holding exc_info would keep the job's tensors alive.
                log.error("job %s failed:\n%s", job.id, "".join(traceback.format_exception(exc)).rstrip())
                failure = Error(job=job.id, code="internal", message=f"{type(exc).__name__}: {exc}", re=job.re)
        if out_of_memory is not None:
            release_memory()
            emit(job, Error(job=job.id, code=out_of_memory.code, message=out_of_memory.message, re=job.re))
        elif failure is not None:
            release_memory()  # whatever the failed step had allocated goes back before the next job
            emit(job, failure)

    def _audio(self, source: AudioSource | None) -> Audio | None:
        """A request's audio: read from an allowed folder on the daemon's disk, or the samples it carried."""
        if source is None:
            return None
        if isinstance(source, InlineAudio):
            check_inline_audio(source, self._max_audio_s)
            return Audio(source.samples, source.sample_rate)
        # Resolved again here, not only when the request came in: a link may have changed since.
        path = self._paths.input(source) if self._paths is not None else source
        return read_audio(path, max_duration_s=self._max_audio_s)

    def _chunks(self, job: Job, backend: MusicBackend, progress: ProgressFn, seed: int, emit: Emit,
                sinks: Sequence[JobSink]) -> Iterator[AudioChunk]:
        """The backend's stream for the job (or a jam's, daemon/jam), sampled with `seed` whatever the
        request said: the seed reported in its started event."""
        if isinstance(job.request, JamStart):
            return self._jam_chunks(job, job.request, backend, seed, emit, sinks)

        def stop() -> bool:
            self._gate.wait_while_hungry()  # a render waits here (between steps) while a jam is short of audio
            return job.stop_requested.is_set()

        context = JobContext(seed=seed, read_audio=self._audio, resolve_input=self._input_path, progress=progress,
                             should_stop=stop, yield_to_higher=job.yield_to_higher, checkpoint=job.checkpoint,
                             emit=lambda event: emit(job, dataclasses.replace(event, re=job.re)))
        request = job.request
        plan = self._tempo.plan(request) if self._tempo and isinstance(request, MusicGenRequest) else None
        if plan is None:
            return backend.run_job(job, context)
        # In time (issue 15): the tempo in force now sets the length; the prompt names it. The
        # backend gets the job with that prompt and length.
        assert self._tempo is not None and isinstance(request, (Generate, Continue))
        job.take = TakeState(plan)
        prompt = plan.prompt(request.prompt or None, self._tempo.prompt_template)
        timed = dataclasses.replace(job, request=dataclasses.replace(request, prompt=prompt or ""),
                                    params=dataclasses.replace(job.params, duration_s=plan.generate_s(job.params.duration_s)))
        return self._tempo.shape(backend.run_job(timed, context), job.take)

    def _jam_chunks(self, job: Job, request: JamStart, backend: MusicBackend, seed: int, emit: Emit,
                    sinks: Sequence[JobSink]) -> Iterator[AudioChunk]:
        """A jam's chunks (daemon/jam); in time, launched on the timeline and conformed as it plays
        (daemon/tempo/jam.py), its prompts naming the tempo."""
        out_dir = self._paths.out_dir if self._paths is not None else Path(".")
        plan = self._tempo.plan(request) if self._tempo is not None else None
        positions = PositionMap()
        template = self._tempo.prompt_template if self._tempo is not None else ""

        def prompt_text(text: str) -> str:
            return (plan.prompt(text, template) if plan is not None else None) or text

        run = JamRun(job, backend, emit=emit, sinks=sinks, seed=seed, settings=self._jam, out_dir=out_dir,
                     resume_path=self._resume_path, gate=self._gate, positions=positions, prompt_text=prompt_text)
        if plan is None:
            return run.chunks()
        assert self._tempo is not None
        job.take = TakeState(plan)
        return self._tempo.shape_jam(run.chunks(), job.take, positions)

    def _resume_path(self, name: str) -> Path:
        """A jam snapshot: a bare name is one under --out/jams; a path must be in a folder inputs may come from."""
        if "/" not in name and self._paths is not None:
            return snapshot_path(self._paths.out_dir, name)
        return self._paths.input(name, what="snapshot path") if self._paths is not None else Path(name)

    def _input_path(self, path: str) -> Path:
        """A file a request names on the daemon's disk, confined like audio inputs."""
        return self._paths.input(path) if self._paths is not None else Path(path)

    def _stream(self, job: Job, backend: MusicBackend, sinks: list[JobSink], emit: Emit,
                seed: int) -> tuple[int, StreamReport | None]:
        """Feed the backend's chunks to the sinks and the event stream; return the job's frames
        (its final stage: a Jukebox preview is not part of the job's audio) and the stream's report."""
        last_percent, last_sent_s = -1, -math.inf

        def progress(done: int, total: int) -> None:
            # The first and last steps, and in between at most one event per percent and per
            # PROGRESS_INTERVAL_S: enough for a progress bar, cheap for a fast model.
            nonlocal last_percent, last_sent_s
            percent = 100 * done // max(total, 1)
            now_s = time.monotonic()
            due = percent != last_percent and now_s - last_sent_s >= PROGRESS_INTERVAL_S
            if due or done == total or last_percent < 0:
                last_percent, last_sent_s = percent, now_s
                emit(job, Progress(job=job.id, done=done, total=total, re=job.re))

        frames = 0
        reports: list[object] = []
        for chunk in _returning(self._chunks(job, backend, progress, seed, emit, sinks), reports):
            if job.stop_requested.is_set():
                raise job.stop_error
            path = None
            for sink in sinks:
                path = sink.write(chunk) or path
            if chunk.stage == "final":
                if not frames:  # the wait a performer hears, from the request's arrival (the backend says where it went)
                    log.info("job %s: first chunk %.1f ms after the request came in", job.id,
                             1000 * (time.monotonic() - job.created_at))
                frames += chunk.frames
            if job.request.chunks:
                # A copy: the event is sent later from the loop thread, and a backend may reuse
                # its buffer for the next chunk.
                audio = np.array(chunk.audio, dtype=np.float32, copy=True)
                emit(job, Chunk(job=job.id, index=chunk.index, offset_samples=chunk.offset_samples,
                                sample_rate=chunk.sample_rate, channels=audio.shape[0], frames=chunk.frames,
                                path=path, stage=chunk.stage, beat=chunk.beat, audio=audio, re=job.re))
        if job.stop_requested.is_set():
            raise job.stop_error
        report = reports[0] if reports else None
        return frames, report if isinstance(report, StreamReport) else None


def _returning(chunks: Iterator[AudioChunk], into: list[object]) -> Iterator[AudioChunk]:
    """Yield `chunks`; once they end, append the generator's return value (its report) to `into`."""
    try:
        while True:
            try:
                chunk = next(chunks)
            except StopIteration as stop:
                into.append(stop.value)
                return
            yield chunk
    finally:  # stopped early: the backend's stream frees its caches now
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


def _with_report(done: Done, report: StreamReport | None) -> Done:
    """The done event, with where the job's time went when the backend measured it."""
    if report is None:
        return done
    return dataclasses.replace(done, engine=report.engine, decode_s=round(report.decode_s, 4),
                               codec_s=round(report.codec_s, 4), early_step_ms=_rounded(report.early_step_ms),
                               late_step_ms=_rounded(report.late_step_ms))


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def reported_seed(job: Job, seed: int) -> int | None:
    """The seed a started event names: `seed`, but for a resumed jam, which samples on from its
    snapshot's generator state: the seed its original started with (None where unknown), never
    one drawn now that played no part in its audio."""
    if isinstance(job.request, JamStart) and job.request.resume is not None:
        return job.params.seed
    return seed


def effective_seed(job: Job) -> int:
    """The job's seed: the request's, else one drawn now (before the backend sees the request,
    so the seed it samples with is the one reported, by construction)."""
    return job.params.seed if job.params.seed is not None else draw_seed()


def check_inline_audio(audio: InlineAudio, max_audio_s: float) -> None:
    """AudioTooLarge if inline samples are longer than the daemon's limit."""
    if audio.frames / audio.sample_rate > max_audio_s:
        raise AudioTooLarge(f"inline audio is {audio.frames / audio.sample_rate:.1f} s long, over the "
                            f"{max_audio_s:g} s limit")


def is_out_of_memory(exc: BaseException) -> bool:
    """torch.OutOfMemoryError (any device) or Python's MemoryError, without importing torch."""
    if isinstance(exc, MemoryError):
        return True
    torch = sys.modules.get("torch")
    oom = getattr(torch, "OutOfMemoryError", None) if torch is not None else None
    return oom is not None and isinstance(exc, oom)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def _abort(sinks: list[JobSink]) -> None:
    for sink in sinks:
        sink.abort()
