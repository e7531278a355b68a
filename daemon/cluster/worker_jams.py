"""Jams on a cluster worker: the jam streams living in the worker, stepped by the front's jam loop.

The front keeps the jam's job (daemon/jam/job.py: pacing, inbox, fades, files); the model's side
of it, a `JamStream` with its caches, lives here, one per jam id. Every call is one remote call
from the front's `RemoteJamStream` (daemon/cluster/jam.py): a step carries the changes submitted
since the last one, and answers with the blocks now final, the changes applied and the counters
the front paces by. A change's token stays at the front: it travels as an integer.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from daemon.backend import MusicBackend
from daemon.cluster.items import ChunkItem
from protocol.errors import NotFound, Unsupported


@dataclass(frozen=True)
class JamMeta:
    """What the front's jam loop reads of a stream once: its format and the snapshot identity."""

    sample_rate: int
    hop_length: int
    chunk_frames: int
    identity: dict[str, str]
    emitted_samples: int  # a resumed jam's counters start at its snapshot's
    generated_samples: int


@dataclass(frozen=True)
class JamStep:
    """A step's (or a finish's) answer: blocks now final, `(token, frame)` of changes applied, and
    the stream's counters after it (`worked`: background work was done)."""

    blocks: list[ChunkItem]
    applied: list[tuple[int, int]]
    emitted_samples: int
    generated_samples: int
    worked: bool = False


class WorkerJams:
    """The jam streams of one worker, by jam id (thread-safe: a jam's calls come one at a time)."""

    def __init__(self, backend_for: Callable[[str], MusicBackend]) -> None:
        self._backend_for = backend_for
        self._jams: dict[str, Any] = {}  # jam id -> JamStream
        self._hosts: dict[str, Any] = {}  # jam id -> the JamHost that made it
        self._lock = threading.Lock()

    def running(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(self._jams)

    def start(self, jam_id: str, model_id: str, prompt: str, sampling: Any, seed: int, context_s: float,
              window_s: float | None) -> JamMeta:
        host = self._host(model_id)
        stream = host.start(prompt, sampling, seed=seed, context_s=context_s, window_s=window_s)
        return self._keep(jam_id, host, stream)

    def resume(self, jam_id: str, model_id: str, snapshot: bytes, name: str) -> tuple[JamMeta, int]:
        """A jam from a snapshot's bytes (the front read its file `name`): written to a file of this
        worker's under the same name (its errors name it), read back."""
        host = self._host(model_id)
        with tempfile.TemporaryDirectory(prefix="riffd-jam-") as folder:
            path = Path(folder) / Path(name).name
            path.write_bytes(snapshot)
            stream, offset = host.resume(path)
        return self._keep(jam_id, host, stream), offset

    def step(self, jam_id: str, changes: list[Any]) -> JamStep:
        stream = self._stream(jam_id)
        for change in changes:
            stream.submit(change)
        blocks, applied = stream.step()
        return self._answer(stream, blocks, applied)

    def background(self, jam_id: str) -> JamStep:
        stream = self._stream(jam_id)
        worked = bool(stream.background_work())
        return self._answer(stream, [], [], worked=worked)

    def finish(self, jam_id: str) -> JamStep:
        stream = self._stream(jam_id)
        return self._answer(stream, stream.finish(), [])

    def cancel_pending(self, jam_id: str) -> list[int]:
        return [int(token) for token in self._stream(jam_id).cancel_pending()]

    def snapshot(self, jam_id: str, changes: list[Any]) -> tuple[bytes, int]:
        """The jam's state now, `changes` submitted first, as a snapshot file's bytes (the front writes
        them under its --out), and its offset."""
        from daemon.models.musicgen.jam.state import save_state

        stream = self._stream(jam_id)
        for change in changes:
            stream.submit(change)
        with self._lock:
            host = self._hosts[jam_id]
        state, offset = host.capture(stream)
        with tempfile.TemporaryDirectory(prefix="riffd-jam-") as folder:
            path = Path(folder) / "snapshot.riffdjam"
            save_state(path, state, identity=host.identity(), offset_samples=offset)
            return path.read_bytes(), offset

    def close(self, jam_id: str) -> bool:
        with self._lock:
            stream = self._jams.pop(jam_id, None)
            self._hosts.pop(jam_id, None)
        if stream is not None:
            stream.close()
        return stream is not None

    def _host(self, model_id: str) -> Any:
        jam_host = getattr(self._backend_for(model_id), "jam_host", None)
        if jam_host is None:
            raise Unsupported(f"model {model_id} cannot jam (jams run on MusicGen text models)")
        return jam_host()

    def _keep(self, jam_id: str, host: Any, stream: Any) -> JamMeta:
        with self._lock:
            self._jams[jam_id] = stream
            self._hosts[jam_id] = host
        return JamMeta(stream.sample_rate, stream.bundle.hop_length, stream.stream_settings.chunk_frames,
                       host.identity(), stream.emitted_samples, stream.generated_samples)

    def _stream(self, jam_id: str) -> Any:
        with self._lock:
            stream = self._jams.get(jam_id)
        if stream is None:
            raise NotFound(f"no jam {jam_id} on this worker (it restarted, or the jam ended)")
        return stream

    @staticmethod
    def _answer(stream: Any, blocks: list[Any], applied: list[tuple[object, int]], worked: bool = False) -> JamStep:
        # Copies: a block may view the codec's buffer, which the next step reuses.
        items = [ChunkItem(block.index, block.offset_samples, np.array(block.audio, dtype=np.float32, copy=True),
                           block.sample_rate, block.stage, block.beat) for block in blocks]
        return JamStep(items, [(int(token), int(frame)) for token, frame in applied],  # type: ignore[call-overload]
                       stream.emitted_samples, stream.generated_samples, worked)
