"""A jam job, run on its own thread: the jam's stream paced to its listener, steered by control requests.

The runner asks this module for the job's chunks, as it asks a backend for a take's. Between two
steps the jam reads its inbox (changes go to the stream, a gain goes to the sound card at once,
a snapshot is captured, a stop starts the fade), and it steps only while it is less than its lead
ahead of what its listener has consumed: the daemon's sound card when it plays there, else the
clock from its first chunk (a client plays what it is sent in real time). Ahead, it spends the
wait feeding the next window's cache, so a slide costs nothing when it comes.

Offsets given to and reported to clients are the job's own (from 0); a resumed jam's stream
counts from the snapshot's position in the original jam, so `base_samples` is subtracted. A jam
in time (daemon/tempo/jam.py) is conformed after this loop, so its output runs at another rate
than its stream: `positions` maps between the two (the identity for a jam not conformed).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from daemon.audio.playback.sink import PlaybackSink
from daemon.audio.types import AudioChunk
from daemon.jam.control import ControlMessage, JamControl
from daemon.jam.gate import LiveGate
from daemon.jobs import Emit, Job
from daemon.sinks.base import JobSink
from daemon.tempo.positions import PositionMap
from protocol.errors import Cancelled, InvalidArgument, OutputError, RiffdError, Unsupported
from protocol.messages import (
    Applied, Error, JamPrompts, JamSet, JamSnapshot, JamStart, Snapshot,
)
from protocol.params import GenerationParams

log = logging.getLogger(__name__)

#: Snapshots go to this folder under --out; a `resume` given as a bare name is looked up there.
SNAPSHOT_FOLDER = "jams"
SNAPSHOT_SUFFIX = ".riffdjam"


@dataclass(frozen=True)
class JamSettings:
    """The daemon's jam settings (`riffd serve --jam-...`); a request may override the first three."""

    # Seconds a jam may run ahead of what its listener consumed: what a change waits to be heard.
    lead_s: float = 1.0
    # Seconds of its own music each new model window starts from (a slide's cost grows with it).
    context_s: float = 4.0
    # Seconds one window runs before the jam slides on (None: the model's window, 30 s for MusicGen).
    window_s: float | None = None
    # A jam whose client is gone (and which is not playing here) stops after this long.
    grace_s: float = 10.0
    # No jam runs longer than this.
    max_s: float = 4 * 3600.0
    # A stopped jam fades out over this long.
    fade_s: float = 0.5
    # A jam's chunk files (for OSC listeners) are deleted once this much newer audio exists.
    chunk_files_keep_s: float = 120.0


def snapshot_path(out_dir: Path, name: str) -> Path:
    return out_dir / SNAPSHOT_FOLDER / (name if name.endswith(SNAPSHOT_SUFFIX) else name + SNAPSHOT_SUFFIX)


def snapshot_seed(path: Path) -> int | None:
    """The seed the jam saved at `path` was started with, None where the snapshot does not say: what a
    resumed jam's `started` reports (its generator's state comes from the snapshot, not from a seed)."""
    from daemon.models.musicgen.jam.state import read_seed

    return read_seed(path)


class JamRun:
    """One jam job's loop; `chunks()` is what the runner streams to the sinks and clients."""

    def __init__(self, job: Job, backend: object, *, emit: Emit, sinks: Sequence[JobSink], seed: int,
                 settings: JamSettings, out_dir: Path, resume_path: Callable[[str], Path],
                 gate: LiveGate | None = None, clock: Callable[[], float] = time.monotonic,
                 positions: PositionMap | None = None, prompt_text: Callable[[str], str] = str) -> None:
        request = job.request
        assert isinstance(request, JamStart) and isinstance(job.jam, JamControl)
        jam_host = getattr(backend, "jam_host", None)
        if jam_host is None:
            raise Unsupported(f"model {job.model} cannot jam (jams run on MusicGen text models)")
        self.job, self.request, self.control = job, request, job.jam
        self.host = jam_host(job.id)
        self.emit, self.settings, self.out_dir, self.clock = emit, settings, out_dir, clock
        # Job samples as the stream counts them <-> as the listener hears them (conformed to a tempo).
        self.positions = positions if positions is not None else PositionMap()
        self.prompt_text = prompt_text  # a jam in time names its tempo in every prompt
        self.gate = gate or LiveGate()
        self.voice = next((sink.voice for sink in sinks if isinstance(sink, PlaybackSink)), None)
        if request.resume is not None:
            self.stream, self.base = self.host.resume(resume_path(request.resume))
        else:
            from daemon.models.musicgen.jam.types import JamSampling

            defaults = GenerationParams()
            sampling = JamSampling(
                temperature=request.temperature or defaults.temperature,
                top_k=request.top_k if request.top_k is not None else defaults.top_k,
                top_p=request.top_p if request.top_p is not None else defaults.top_p,
                guidance_scale=request.guidance_scale if request.guidance_scale is not None else defaults.guidance_scale)
            self.stream = self.host.start(prompt_text(request.prompt), sampling, seed=seed,
                                          context_s=request.context_s or settings.context_s,
                                          window_s=request.window_s or settings.window_s)
            self.base = 0
        self.rate = self.stream.sample_rate
        self.hop = self.stream.bundle.hop_length
        self.lead_samples = round((request.lead_s or settings.lead_s) * self.rate)
        limit_s = min(request.duration_s or math.inf, settings.max_s)
        self.end_sample = self.base + round(limit_s * self.rate)  # the stream's own count
        self.fade_samples = max(1, round(settings.fade_s * self.rate))
        self.started_at: float | None = None
        self.index = 0
        self._writers: list[threading.Thread] = []
        self._chunk_files_kept = max(2, math.ceil(settings.chunk_files_keep_s * self.rate /
                                                  (self.stream.stream_settings.chunk_frames * self.hop)))

    # -- the loop -----------------------------------------------------------------------------------

    def chunks(self) -> Iterator[AudioChunk]:
        stream = self.stream
        try:
            while True:
                self._read_inbox()
                self._check_listener()
                if stream.generated_samples >= self.end_sample:
                    for chunk in stream.finish():
                        if chunk.offset_samples < self.end_sample:
                            yield self._shaped(chunk)
                    return
                ahead = self._ahead_samples()
                # Short of half its lead (and started): renders wait between their steps until it is not.
                self.gate.hungry(self.job.id, self.started_at is not None and ahead < self.lead_samples / 2)
                if ahead >= self.lead_samples and not self._ending:
                    if not stream.background_work():
                        self.control.wait(min(0.05, max(0.002, (ahead - self.lead_samples) / self.rate)))
                    continue
                blocks, applied = stream.step()
                for token, frame in applied:
                    self._applied(token, frame * self.hop)
                for chunk in blocks:
                    if self.started_at is None:
                        self.started_at = self.clock()
                    yield self._shaped(chunk)
        finally:
            self.gate.hungry(self.job.id, False)
            for token in stream.cancel_pending():
                self._refuse(token, "ended before the change's frame came")
            for message in self.control.drain():
                self._refuse(message, "ended")
            for writer in self._writers:
                writer.join()
            stream.close()

    @property
    def _ending(self) -> bool:
        """Stopped: no more pacing, the fade is generated at once (it plays after the lead)."""
        return self.control.stop_requested

    def _ahead_samples(self) -> float:
        """Stream samples handed out that the listener has not consumed yet."""
        emitted = self.stream.emitted_samples
        if self.voice is not None and not self.voice.ended.is_set():
            if not self.voice.playing and self.voice.frames_played == 0:
                if self.voice.launch_beat is not None:
                    return emitted - self.base  # launched on a beat (in time): nothing is consumed before it
                return 0.0  # the sound card waits for its jitter buffer: fill it
            # Elapsed, not played: what an in-time voice skipped or owes is consumed too (else one that
            # ran dry would never be fed again).
            return emitted - (self.base + self.positions.input_of(self.voice.elapsed_samples))
        if self.started_at is None:
            return 0.0
        return emitted - (self.base + self.positions.input_of((self.clock() - self.started_at) * self.rate))

    def _shaped(self, chunk: AudioChunk) -> AudioChunk:
        """The chunk in the job's timeline, faded over the last `fade_samples` before the end."""
        audio = chunk.audio[:, :max(0, self.end_sample - chunk.offset_samples)]
        fade_start = self.end_sample - self.fade_samples
        if chunk.offset_samples + audio.shape[1] > fade_start:
            positions = np.arange(chunk.offset_samples, chunk.offset_samples + audio.shape[1])
            gain = np.clip((self.end_sample - positions) / self.fade_samples, 0.0, 1.0).astype(np.float32)
            audio = audio * gain[None]
        shaped = AudioChunk(self.index, chunk.offset_samples - self.base, audio, chunk.sample_rate)
        self.index += 1
        self._expire_chunk_file(shaped.index - self._chunk_files_kept)
        return shaped

    # -- control requests -----------------------------------------------------------------------

    def _read_inbox(self) -> None:
        if self.control.stop_requested:
            # The fade starts at the first sample not handed out yet.
            self.end_sample = min(self.end_sample, self.stream.emitted_samples + self.fade_samples)
        for message in self.control.drain():
            try:
                self._handle(message)
            except RiffdError as exc:
                message.answer(Error(job=self.job.id, code=exc.code, message=exc.message, re=message.request.id))

    def _handle(self, message: ControlMessage) -> None:
        from daemon.models.musicgen.jam.prompts import WeightedPrompts
        from daemon.models.musicgen.jam.types import Change

        request = message.request
        if isinstance(request, JamSnapshot):
            self._snapshot(message)
            return
        prompts = None
        sampling: tuple[tuple[str, float], ...] = ()
        at = request.at_samples if isinstance(request, JamSet) else None
        if isinstance(request, JamPrompts):
            prompts = WeightedPrompts.of(tuple(map(self.prompt_text, request.prompts)), request.weights)
        else:
            if request.prompt is not None:
                prompts = WeightedPrompts.of((self.prompt_text(request.prompt),))
            sampling = tuple((name, getattr(request, name)) for name in ("temperature", "top_k", "top_p",
                                                                          "guidance_scale")
                             if getattr(request, name) is not None)
            if request.gain is not None and self.voice is not None:
                self.voice.set_gain(request.gain)
            if prompts is None and not sampling:
                # A gain alone: heard from the sample the sound card plays now.
                played = self.positions.input_of(self.voice.elapsed_samples) if self.voice is not None else \
                    self.stream.emitted_samples - self.base
                self._applied(message, self.base + played)
                return
        at_frame = None
        if at is not None:
            at_stream = self.base + self.positions.input_of(at)
            if at_stream >= self.end_sample:
                # Refused now: it would wait, unanswered, until the jam ended, then fail.
                raise InvalidArgument(f"at_samples {at} is past the end of jam {self.job.id} "
                                      f"({self.positions.output_of(self.end_sample - self.base)} samples: its "
                                      "duration_s, or the daemon's --max-jam-s)")
            at_frame = -(-at_stream // self.hop)
        self.stream.submit(Change(prompts=prompts, sampling=sampling, at_frame=at_frame, token=message))

    def _applied(self, token: object, stream_sample: int) -> None:
        assert isinstance(token, ControlMessage)
        offset = self.positions.output_of(stream_sample - self.base)
        event = Applied(job=self.job.id, offset_samples=max(0, offset), request=token.request.TYPE, re=token.request.id)
        log.info("jam %s: %s applied at %.2f s", self.job.id, token.request.TYPE, event.offset_samples / self.rate)
        self.emit(self.job, event)
        token.answer(event)

    def _refuse(self, token: object, why: str) -> None:
        if isinstance(token, ControlMessage):
            token.answer(Error(job=self.job.id, code="not_found", message=f"jam {self.job.id} {why}",
                               re=token.request.id))

    def _snapshot(self, message: ControlMessage) -> None:
        """Capture now (between two steps); write on a helper thread (the host's way: a cluster
        worker's jam comes back as a file's bytes), then tell."""
        request = message.request
        assert isinstance(request, JamSnapshot)
        state, offset = self.host.capture(self.stream)
        job_offset = self.positions.output_of(offset - self.base)
        path = snapshot_path(self.out_dir, request.name or f"{self.job.id}-{job_offset}")
        identity = self.host.identity()

        def write() -> None:
            try:
                self.host.save(path, state, identity=identity, offset_samples=offset)
            except OSError as exc:
                error = OutputError(f"cannot write snapshot {path}: {exc.strerror or exc}")
                message.answer(Error(job=self.job.id, code=error.code, message=error.message, re=request.id))
                return
            event = Snapshot(job=self.job.id, path=str(path), offset_samples=job_offset, re=request.id)
            log.info("jam %s: snapshot at %.2f s written to %s", self.job.id, job_offset / self.rate, path)
            self.emit(self.job, event)
            message.answer(event)

        writer = threading.Thread(target=write, name=f"riffd-jam-snapshot-{self.job.id}", daemon=True)
        self._writers.append(writer)
        writer.start()

    # -- listener -----------------------------------------------------------------------------------

    def _check_listener(self) -> None:
        gone_s = self.control.listener_gone_for_s()
        playing = self.voice is not None and not self.voice.ended.is_set()
        if gone_s >= self.settings.grace_s and not playing:
            self.job.request_stop(Cancelled(f"jam {self.job.id} stopped: its client has been gone for "
                                            f"{gone_s:.0f} s and it is not playing on this machine"))
            raise self.job.stop_error

    def _expire_chunk_file(self, index: int) -> None:
        """Delete an old chunk file of this jam: an endless job must not fill the disk."""
        if index >= 0:
            (self.out_dir / self.job.id / f"chunk-{index:05d}.wav").unlink(missing_ok=True)
