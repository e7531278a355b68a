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
from collections.abc import Callable, Iterator
from pathlib import Path

from daemon.audio.types import Audio
from daemon.backend import JobContext, MusicBackend, StreamReport
from daemon.cluster.items import (
    ChunkItem, EndItem, ErrorItem, JobSpec, LoadSettings, ModelInfo, ProgressItem, StreamItem, WorkerInfo,
)
from daemon.jobs import Job
from daemon.residency import release_memory
from daemon.runner import is_out_of_memory
from protocol.audio_ref import AudioSource
from protocol.errors import BadAudio, ModelUnavailable, RiffdError, Unsupported
from protocol.messages import Generate

log = logging.getLogger(__name__)

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

    def ping(self) -> WorkerInfo:
        with self._lock:
            return WorkerInfo(self._name, os.getpid(), self._node_id(), socket.gethostname(),
                              tuple(self._backends), tuple(self._stops))

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

    def stop(self, job_id: str) -> bool:
        """Ask job `job_id` to stop within a decode step; False if it is not running here."""
        with self._lock:
            flag = self._stops.get(job_id)
        if flag is not None:
            flag.set()
        return flag is not None

    def run(self, spec: JobSpec) -> Iterator[StreamItem]:
        """The job's stream: progress and chunks as they are decoded, then one end or error item.

        Called by Ray as a streaming generator: each yield goes back to the front before the job
        ends, and Ray pauses this generator while the front has not taken enough of what it sent.
        """
        flag = threading.Event()
        with self._lock:
            self._stops[spec.job_id] = flag
        try:
            yield from self._stream(spec, flag)
        except RiffdError as exc:  # cancelled included: the front says why it asked
            yield ErrorItem(exc.code, exc.message)
        except Exception as exc:  # noqa: BLE001 - the front turns this into the job's error event
            if is_out_of_memory(exc):
                message = f"out of memory on {self._name}: {str(exc).strip().splitlines()[0][:300] if str(exc) else ''}"
                yield ErrorItem("out_of_memory", message)
            else:
                log.error("%s: job %s failed:\n%s", self._name, spec.job_id,
                          "".join(traceback.format_exception(exc)).rstrip())
                yield ErrorItem("internal", f"{type(exc).__name__}: {exc} (on {self._name})")
            release_memory()
        finally:
            with self._lock:
                self._stops.pop(spec.job_id, None)

    def _stream(self, spec: JobSpec, flag: threading.Event) -> Iterator[StreamItem]:
        backend = self._backend(spec.model_id)  # loaded already, unless this worker restarted since
        progress: list[ProgressItem] = []

        def on_progress(done: int, total: int) -> None:
            progress[:] = [ProgressItem(done, total)]  # only the newest is worth sending

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

        job = Job(id=spec.job_id, request=spec.request, model=spec.model_id, params=spec.params)
        context = JobContext(seed=spec.seed, read_audio=read_audio, resolve_input=resolve_input,
                             progress=on_progress, should_stop=flag.is_set, yield_to_higher=lambda: None)
        stream = backend.run_job(job, context)
        sent: ProgressItem | None = None
        try:
            while True:
                try:
                    chunk = next(stream)
                except StopIteration as stop:
                    report = stop.value
                    break
                if progress and progress[0] != sent:
                    sent = progress[0]
                    yield sent
                yield ChunkItem(chunk.index, chunk.offset_samples, chunk.audio, chunk.sample_rate, chunk.stage,
                                chunk.beat)
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()  # stopped early: the backend frees the job's caches now
        if progress and progress[0] != sent:
            yield progress[0]
        yield EndItem(dataclasses.asdict(report) if isinstance(report, StreamReport) else None)

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
        return backend

    def _info(self, backend: MusicBackend) -> ModelInfo:
        probe = Job(id="slots", request=Generate(prompt="slots", duration_s=1.0), model=backend.model_id,
                    params=Generate(prompt="slots", duration_s=1.0).generation_params())
        return ModelInfo(backend.model_id, backend.sample_rate, backend.audio_channels, backend.supports_melody,
                         str(getattr(backend, "engine_name", "")), max(1, backend.concurrent_jobs(probe)))


def _ray_node_id() -> str:
    """The Ray node this process runs on ("" outside Ray)."""
    try:
        import ray

        return str(ray.get_runtime_context().get_node_id())
    except Exception:  # noqa: BLE001 - only a label for status
        return ""
