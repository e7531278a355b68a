"""Resident models: loaded once, shared by jobs, unloaded after a keep-alive when unused.

Models named at start-up are pinned (never expire); models loaded on demand by a request
stay `keep_alive_s` after their last use. A reference count keeps a model a job is using
from expiring under it; an explicit unload only drops the pool's reference, so a running
job finishes with the model it has.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from daemon.backend import MusicBackend
from protocol.errors import NotFound

log = logging.getLogger(__name__)

#: Loads a model: (model_id, device) -> backend; raises UnknownModel / ModelUnavailable.
Loader = Callable[[str, str], MusicBackend]


@dataclass
class _Entry:
    backend: MusicBackend
    pinned: bool
    last_used: float
    users: int = 0


class ModelPool:
    """Backends by model id for one device; thread-safe."""

    def __init__(self, loader: Loader, device: str | Callable[[], str], *, keep_alive_s: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """`device`: its name, or a function that names it, called once when it is first needed (naming
        "auto"'s choice imports torch, which the daemon defers until it has tried its ports)."""
        self._loader = loader
        self._device_or_namer = device
        self._device_name: str | None = device if isinstance(device, str) else None
        self._keep_alive_s = keep_alive_s
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        self._device_lock = threading.Lock()
        # One lock per model id being loaded, so two requests for it load it once.
        self._load_locks: dict[str, threading.Lock] = {}

    @property
    def device(self) -> str:
        with self._device_lock:  # its own: naming may take seconds, which the pool's lock must not wait for
            if self._device_name is None:
                namer = self._device_or_namer
                assert callable(namer)
                self._device_name = namer()
            return self._device_name

    def loaded(self) -> list[str]:
        with self._lock:
            return list(self._entries)

    def engines(self) -> dict[str, str]:
        """The decode mode each resident model runs ("" for backends without modes): what status lists.
        A stand-in for a model held elsewhere (a cluster's workers) counts while it is held there (its
        `resident`), not merely while the pool keeps it."""
        with self._lock:
            backends = {model_id: entry.backend for model_id, entry in self._entries.items()}
        return {model_id: str(getattr(backend, "engine_name", "")) for model_id, backend in backends.items()
                if getattr(backend, "resident", True)}

    def resident(self, model_id: str) -> MusicBackend | None:
        """The loaded backend of `model_id`, or None; loads nothing and does not count as a use."""
        with self._lock:
            entry = self._entries.get(model_id)
            return entry.backend if entry is not None else None

    def residents(self) -> dict[str, MusicBackend]:
        """The loaded backends by model id (a copy; for monitors that show their formats)."""
        with self._lock:
            return {model_id: entry.backend for model_id, entry in self._entries.items()}

    def load(self, model_id: str, *, pin: bool = False) -> MusicBackend:
        """The backend for `model_id`, loading it if needed (the caller's thread does the work)."""
        with self._lock:
            entry = self._entries.get(model_id)
            if entry is not None:
                entry.pinned = entry.pinned or pin
                entry.last_used = self._clock()
                return entry.backend
            load_lock = self._load_locks.setdefault(model_id, threading.Lock())
        with load_lock:
            with self._lock:
                entry = self._entries.get(model_id)
                if entry is not None:
                    entry.pinned = entry.pinned or pin
                    return entry.backend
            log.info("loading model %s on %s", model_id, self.device)
            started = time.perf_counter()
            try:
                backend = self._loader(model_id, self.device)
            finally:
                # Failed ids must not pile up locks (requests may name any string).
                with self._lock:
                    self._load_locks.pop(model_id, None)
            log.info("model %s loaded in %.1f s", model_id, time.perf_counter() - started)
            with self._lock:
                self._entries[model_id] = _Entry(backend, pin, self._clock())
            freeze_resident()
            return backend

    @contextlib.contextmanager
    def use(self, model_id: str) -> Iterator[MusicBackend]:
        """Hold `model_id` for a job: loaded if needed, kept from expiring until released."""
        backend = self.load(model_id)
        with self._lock:
            entry = self._entries.get(model_id)
            if entry is not None and entry.backend is backend:
                entry.users += 1
        try:
            yield backend
        finally:
            with self._lock:
                entry = self._entries.get(model_id)
                if entry is not None and entry.backend is backend:
                    entry.users -= 1
                    entry.last_used = self._clock()

    def unload(self, model_id: str) -> None:
        """Drop the pool's reference; raise NotFound if the model is not resident."""
        with self._lock:
            entry = self._entries.pop(model_id, None)
        if entry is None:
            raise NotFound(f"model {model_id!r} is not loaded")
        log.info("unloaded model %s", model_id)
        _released(entry.backend)
        del entry
        release_memory()

    def expire(self) -> list[str]:
        """Unload on-demand models unused for longer than the keep-alive; return their ids."""
        now = self._clock()
        with self._lock:
            stale = [model_id for model_id, entry in self._entries.items()
                     if not entry.pinned and entry.users == 0 and now - entry.last_used >= self._keep_alive_s]
            dropped = [self._entries.pop(model_id).backend for model_id in stale]
        for backend in dropped:
            _released(backend)
        del dropped
        if stale:
            log.info("keep-alive expired, unloaded: %s", ", ".join(stale))
            release_memory()
        return stale

    def clear(self) -> None:
        with self._lock:
            dropped = [entry.backend for entry in self._entries.values()]
            self._entries.clear()
        for backend in dropped:
            _released(backend)
        del dropped
        release_memory(resident=False)


def _released(backend: MusicBackend) -> None:
    """Tell a backend that holds its model elsewhere (a cluster worker) that the pool dropped it."""
    release = getattr(backend, "release", None)
    if release is not None:
        release()


def freeze_resident() -> None:
    """Move every object alive now (a model just loaded, with the ones resident) out of the collector's scans.

    A full collection walks every tracked object: with a model loaded, ~0.2-0.3 s of the GIL, which
    landed in the first long job after start (198-282 ms in one decode step, 4 of 4 processes; on a
    60 s job's 300 late steps that is +0.7-0.9 ms on their mean). Frozen objects are still freed by
    their reference counts; `release_memory` thaws them before it collects, so an unloaded model's
    cycles go too."""
    gc.collect()
    gc.freeze()


def release_memory(*, resident: bool = True) -> None:
    """Return freed model memory now rather than at some later collection; `resident`: models are
    still loaded (frozen again after the collection)."""
    gc.unfreeze()
    if resident:
        freeze_resident()
    else:
        gc.collect()
    torch = sys.modules.get("torch")  # never import torch just for this
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
