"""A cluster worker: the Ray actor that holds loaded models and streams jobs' chunks back.

Ray-free on purpose (the front makes it an actor with `ray.remote`), so it is a plain class that
runs anywhere riffd is installed. Threaded: Ray runs its calls on a small pool, so a ping or a stop
reaches it while jobs decode (their steps release the GIL in torch's kernels).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import threading
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from daemon.audio.types import Audio
from daemon.backend import JobContext, MusicBackend, StreamReport
from daemon.cluster.items import (
    CheckpointItem, ChunkItem, CodesItem, EndItem, ErrorItem, EventItem, JobSpec, LoadSettings, ModelInfo, ProgressItem,
    StreamItem, WorkerInfo,
)
from daemon.cluster.worker_jams import WorkerJams
from daemon.jobs import Job
from daemon.jukebox_jobs import JukeboxJob
from daemon.residency import freeze_resident, release_memory
from daemon.runner import is_out_of_memory
from protocol.audio_ref import AudioSource
from protocol.errors import BadAudio, ModelUnavailable, RiffdError, Unsupported
from protocol.messages import Generate, JukeboxRequest

log = logging.getLogger(__name__)

#: Items a job's decoding thread may get ahead of its Ray stream (which adds Ray's own back-pressure).
OUTBOX_ITEMS = 2
#: What the front may call on a jam living here (`ModelWorker.jam`).
JAM_OPS = frozenset({"start", "resume", "step", "background", "finish", "cancel_pending", "snapshot", "close"})
#: Loads a model on this worker: (model_id, settings) -> backend.
WorkerLoader = Callable[[str, LoadSettings], MusicBackend]


def registry_loader(model_id: str, settings: LoadSettings) -> MusicBackend:
    """The real loader: the model registry, with the front daemon's settings."""
    from daemon.models.registry import load_backend

    return load_backend(model_id, device=settings.device, cache_dir=settings.cache_dir,
                        max_duration_s=settings.max_duration_s, engine=settings.engine,
                        max_batch=settings.max_batch, batch_memory_mb=settings.batch_memory_mb)


class ModelWorker:
    """Resident backends by model id, and the stop flags of the jobs running on them."""

    def __init__(self, name: str, settings: LoadSettings, loader: WorkerLoader | None = None,
                 node_id: Callable[[], str] | None = None) -> None:
        self._name = name
        self._settings = settings
        self._loader = loader or registry_loader
        self._node_id = node_id or _ray_node_id
        self._backends: dict[str, MusicBackend] = {}
        self._stops: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._load_lock = threading.Lock()  # one load at a time: two would compete for the device's memory
        self._jams = WorkerJams(self._backend)

    def ping(self) -> WorkerInfo:
        with self._lock:
            models, running = tuple(self._backends), tuple(self._stops)
        return WorkerInfo(self._name, os.getpid(), self._node_id(), socket.gethostname(), models,
                          running + self._jams.running())

    def load(self, model_id: str) -> ModelInfo | ErrorItem:
        """Load `model_id` (once); a failure comes back as an error item with its protocol code."""
        try:
            return self._info(self._backend(model_id))
        except RiffdError as exc:
            return ErrorItem(exc.code, exc.message)
        except Exception as exc:  # noqa: BLE001 - a load failure on a worker is an error event at the front
            log.error("%s: loading %s failed:\n%s", self._name, model_id, "".join(traceback.format_exception(exc)))
            return ErrorItem(ModelUnavailable.code, f"{self._name} could not load {model_id}: "
                                                    f"{type(exc).__name__}: {exc}")

    def unload(self, model_id: str) -> bool:
        with self._lock:
            backend = self._backends.pop(model_id, None)
        del backend
        release_memory()
        return True

    def jam(self, jam_id: str, op: str, *args: Any) -> Any:
        """One call (`op`: a `WorkerJams` method) on jam `jam_id`, whose stream lives here while the
        front runs its job; a failure comes back as an error item with its protocol code."""
        if op not in JAM_OPS:
            return ErrorItem("internal", f"{self._name}: no jam operation {op!r}")
        try:
            return getattr(self._jams, op)(jam_id, *args)
        except RiffdError as exc:
            return ErrorItem(exc.code, exc.message)
        except Exception as exc:  # noqa: BLE001 - the front turns this into the jam's error event
            if is_out_of_memory(exc):
                return ErrorItem("out_of_memory", f"out of memory on {self._name} in jam {jam_id}")
            log.error("%s: jam %s (%s) failed:\n%s", self._name, jam_id, op,
                      "".join(traceback.format_exception(exc)).rstrip())
            return ErrorItem("internal", f"{type(exc).__name__}: {exc} (on {self._name})")

    def stop(self, job_id: str) -> bool:
        """Ask job `job_id` to stop within a decode step; False if it is not running here."""
        with self._lock:
            flag = self._stops.get(job_id)
        if flag is not None:
            flag.set()
        return flag is not None

    def run(self, spec: JobSpec) -> Iterator[StreamItem]:
        """The job's stream: progress and chunks as they are decoded (with a Jukebox job's codes,
        checkpoints and word timings as they come), then one end or error item.

        Called by Ray as a streaming generator: each yield goes back to the front before the job
        ends, and Ray pauses this generator while the front has not taken enough of what it sent.
        The job decodes on a thread of its own into a small outbox, so what a backend reports
        between chunks (progress, a checkpoint after a window) leaves at once, not with the next chunk.
        """
        flag = threading.Event()
        with self._lock:
            self._stops[spec.job_id] = flag
        outbox = _Outbox(OUTBOX_ITEMS)
        pump = threading.Thread(target=self._pump, args=(spec, flag, outbox), name=f"riffd-job-{spec.job_id}",
                                daemon=True)
        pump.start()
        try:
            while True:
                item = outbox.take()
                yield item
                if isinstance(item, (EndItem, ErrorItem)):
                    return
        finally:
            flag.set()  # left early (the front closed the stream): the job stops within a step
            outbox.close()
            pump.join()
            with self._lock:
                self._stops.pop(spec.job_id, None)

    def _pump(self, spec: JobSpec, flag: threading.Event, outbox: _Outbox) -> None:
        """Run the job into `outbox`, ending it with exactly one end or error item."""
        ended: EndItem | ErrorItem | None
        try:
            ended = self._stream(spec, flag, outbox)
        except RiffdError as exc:  # cancelled included: the front says why it asked
            ended = ErrorItem(exc.code, exc.message)
        except Exception as exc:  # noqa: BLE001 - the front turns this into the job's error event
            if is_out_of_memory(exc):
                message = f"out of memory on {self._name}: {str(exc).strip().splitlines()[0][:300] if str(exc) else ''}"
                ended = ErrorItem("out_of_memory", message)
            else:
                log.error("%s: job %s failed:\n%s", self._name, spec.job_id,
                          "".join(traceback.format_exception(exc)).rstrip())
                ended = ErrorItem("internal", f"{type(exc).__name__}: {exc} (on {self._name})")
            release_memory()
        if ended is not None:
            outbox.put(ended)

    def _stream(self, spec: JobSpec, flag: threading.Event, outbox: _Outbox) -> EndItem | None:
        """The job's chunks into `outbox`; its end item (None: the front left, nothing more to send)."""
        backend = self._backend(spec.model_id)  # loaded already, unless this worker restarted since

        def read_audio(source: AudioSource | None) -> Audio | None:
            if source is None:
                return None
            found = spec.inputs.get(source) if isinstance(source, str) else None
            if found is None:
                raise BadAudio("a cluster worker reads only the audio the front daemon sent with the job")
            return Audio(found.samples, found.sample_rate)

        def resolve_input(path: str) -> Path:
            raise Unsupported("files named by a request are read by the front daemon; this input cannot "
                              "travel to a cluster worker yet")

        job = _worker_job(spec, outbox)
        context = JobContext(seed=spec.seed, read_audio=read_audio, resolve_input=resolve_input,
                             progress=lambda done, total: outbox.progress(ProgressItem(done, total)),
                             should_stop=flag.is_set, yield_to_higher=lambda: None,
                             checkpoint=_RelayedCheckpoint(spec.resume, outbox) if spec.journaled else None,
                             emit=lambda event: outbox.send(EventItem(event)))
        stream = backend.run_job(job, context)
        try:
            while True:
                try:
                    chunk = next(stream)
                except StopIteration as stop:
                    report = stop.value
                    break
                # A copy: the item may leave after the backend reused its buffer for the next chunk.
                audio = np.array(chunk.audio, dtype=np.float32, copy=True)
                if not outbox.put(ChunkItem(chunk.index, chunk.offset_samples, audio, chunk.sample_rate, chunk.stage,
                                            chunk.beat)):
                    return None
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()  # stopped early: the backend frees the job's caches now
        return EndItem(dataclasses.asdict(report) if isinstance(report, StreamReport) else None)

    def _backend(self, model_id: str) -> MusicBackend:
        with self._lock:
            backend = self._backends.get(model_id)
        if backend is not None:
            return backend
        with self._load_lock:
            with self._lock:
                backend = self._backends.get(model_id)
            if backend is None:
                log.info("%s: loading %s", self._name, model_id)
                backend = self._loader(model_id, self._settings)
                with self._lock:
                    self._backends[model_id] = backend
                freeze_resident()
        return backend

    def _info(self, backend: MusicBackend) -> ModelInfo:
        probe = Job(id="slots", request=Generate(prompt="slots", duration_s=1.0), model=backend.model_id,
                    params=Generate(prompt="slots", duration_s=1.0).generation_params())
        return ModelInfo(backend.model_id, backend.sample_rate, backend.audio_channels, backend.supports_melody,
                         str(getattr(backend, "engine_name", "")), max(1, backend.concurrent_jobs(probe)))


class _Outbox:
    """A job's items between its decoding thread and its Ray stream, in order: at most `limit` waiting
    (the decoder waits beyond that, so Ray's back-pressure reaches it); a progress item never waits,
    and replaces one that nothing has followed yet (only the newest is worth sending)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._items: deque[StreamItem] = deque()
        self._closed = False
        self._changed = threading.Condition()

    def put(self, item: StreamItem) -> bool:
        """Queue `item`, waiting for room; False (dropped) once the stream was closed."""
        with self._changed:
            while len(self._items) >= self._limit and not self._closed:
                self._changed.wait()
            if self._closed:
                return False
            self._items.append(item)
            self._changed.notify_all()
            return True

    def send(self, item: StreamItem) -> None:
        """`put` for a backend's callbacks: an item the closed stream drops needs no answer (the job stops)."""
        self.put(item)

    def progress(self, item: ProgressItem) -> None:
        with self._changed:
            if self._items and isinstance(self._items[-1], ProgressItem):
                self._items[-1] = item
            else:
                self._items.append(item)
            self._changed.notify_all()

    def take(self) -> StreamItem:
        with self._changed:
            while not self._items:
                self._changed.wait()
            item = self._items.popleft()
            self._changed.notify_all()
            return item

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()


class _RelayedCheckpoint:
    """A journaled job's checkpoint on a worker: the front's last one to resume from, new ones sent back."""

    def __init__(self, resume: dict[str, np.ndarray] | None, outbox: _Outbox) -> None:
        self._resume = resume
        self._outbox = outbox

    def load(self) -> dict[str, np.ndarray] | None:
        return self._resume

    def save(self, arrays: dict[str, np.ndarray], done: int, total: int) -> None:
        copies = {name: np.array(array, copy=True) for name, array in arrays.items()}
        self._outbox.send(CheckpointItem(copies, done, total))


def _worker_job(spec: JobSpec, outbox: _Outbox) -> Job:
    """The job as the backend takes it; a Jukebox job's codes come from the spec and go back as items."""
    if isinstance(spec.request, JukeboxRequest):
        sink = (lambda codes: outbox.send(CodesItem(codes))) if spec.send_codes else None
        return JukeboxJob(id=spec.job_id, request=spec.request, model=spec.model_id, params=spec.params,
                          source_top=spec.codes, codes_sink=sink)
    return Job(id=spec.job_id, request=spec.request, model=spec.model_id, params=spec.params)


def _ray_node_id() -> str:
    """The Ray node this process runs on ("" outside Ray)."""
    try:
        import ray

        return str(ray.get_runtime_context().get_node_id())
    except Exception:  # noqa: BLE001 - only a label for status
        return ""
