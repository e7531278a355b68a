"""A jam whose model side lives on a cluster worker, as the front's jam loop sees it.

The front runs the jam's job as without Ray (daemon/jam/job.py: pacing to the listener, the inbox
of changes, fades, snapshots' files, chunk files); `RayBackend.jam_host(job_id)` gives it a
`RemoteJamHost`, whose streams forward each step to the worker holding the `JamStream` and its
caches (daemon/cluster/worker_jams.py). A step is one remote call: it carries the changes
submitted since the last, and brings back the blocks now final, the changes applied (their tokens
stay here) and the counters the loop paces by. A worker lost mid-jam ends the jam with `worker_lost`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daemon.audio.types import AudioChunk
from daemon.cluster.cluster import RayCluster, WorkerGone
from daemon.cluster.items import ErrorItem
from daemon.cluster.worker_jams import JamMeta, JamStep
from daemon.journal import write_atomic
from protocol.errors import BadSnapshot, RiffdError, WorkerLost

if TYPE_CHECKING:
    from daemon.models.musicgen.jam.types import Change, JamSampling


@dataclass(frozen=True)
class _Format:
    """The stream's attributes the jam loop reads (`stream.bundle.hop_length`, `stream.stream_settings.chunk_frames`)."""

    hop_length: int = 0
    chunk_frames: int = 0


class RemoteJamHost:
    """One jam's host: places it on a worker with the model (loading it there if needed) and starts it there,
    under the jam's job id (the worker's `jobs` in status name it as the front's jobs do)."""

    def __init__(self, cluster: RayCluster, model_id: str, job_id: str) -> None:
        self._cluster = cluster
        self._model_id = model_id
        self._job_id = job_id
        self._identity: dict[str, str] = {}

    def identity(self) -> dict[str, str]:
        """The worker's model identity (a snapshot's bytes carry it already)."""
        return self._identity

    def start(self, prompt: str, sampling: JamSampling, *, seed: int, context_s: float,
              window_s: float | None) -> RemoteJamStream:
        return self._open("start", prompt, sampling, seed, context_s, window_s)[0]

    def resume(self, path: Path) -> tuple[RemoteJamStream, int]:
        """The jam saved at `path` (read here, under the front's folders), continued on a worker."""
        try:
            snapshot = path.read_bytes()
        except FileNotFoundError:
            raise BadSnapshot(f"no snapshot file {path.name}") from None
        except OSError as exc:
            raise BadSnapshot(f"cannot read {path.name}: {exc.strerror or exc}") from None
        stream, offset = self._open("resume", snapshot, path.name)
        assert offset is not None
        return stream, offset

    @staticmethod
    def capture(stream: RemoteJamStream) -> tuple[bytes, int]:
        """The jam's state now, as the snapshot file's bytes, and the offset it continues from."""
        return stream.snapshot()

    @staticmethod
    def save(path: Path, state: bytes, *, identity: dict[str, str], offset_samples: int) -> None:
        """Write a captured snapshot under the front's --out (the worker made the file's bytes)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, state, sync=False)

    def _open(self, op: str, *args: Any) -> tuple[RemoteJamStream, int | None]:
        """Place a new jam and make its stream there (`start` or `resume` on the worker)."""
        jam_id = self._job_id
        tried: set[str] = set()
        while True:
            try:
                worker, _ = self._cluster.acquire(self._model_id, jam_id, tried)
            except WorkerGone as gone:  # lost while loading the model: another worker
                self._cluster.mark_lost(gone)
                tried.add(gone.worker)
                continue
            stream = RemoteJamStream(self._cluster, worker, jam_id)
            try:
                answer = stream.call(op, self._model_id, *args)
            except WorkerLost:  # lost before the jam made a sound: start it on another worker
                self._cluster.release(worker, jam_id)
                tried.add(worker)
                continue
            except BaseException:
                self._cluster.release(worker, jam_id)
                raise
            meta, offset = answer if op == "resume" else (answer, None)
            assert isinstance(meta, JamMeta)
            self._identity = meta.identity
            stream.opened(meta)
            return stream, offset


class RemoteJamStream:
    """A `JamStream` on a worker, with the methods and counters the front's jam loop uses."""

    def __init__(self, cluster: RayCluster, worker: str, jam_id: str) -> None:
        self._cluster = cluster
        self.worker = worker
        self.jam_id = jam_id
        self.sample_rate = 0
        self.bundle = self.stream_settings = _Format()
        self.emitted_samples = self.generated_samples = 0
        self._unsent: list[Change] = []  # submitted, to go with the next step
        self._tokens: dict[int, object] = {}  # what the front's loop gets back when a change applies
        self._next_token = 0
        self._closed = False
        self._lost = False  # its worker was lost: nothing more to ask it (each call would wait out its timeout)

    def opened(self, meta: JamMeta) -> None:
        self.sample_rate = meta.sample_rate
        self.bundle = self.stream_settings = _Format(meta.hop_length, meta.chunk_frames)
        self.emitted_samples, self.generated_samples = meta.emitted_samples, meta.generated_samples

    def submit(self, change: Change) -> None:
        self._next_token += 1
        self._tokens[self._next_token] = change.token
        self._unsent.append(dataclasses.replace(change, token=self._next_token))

    def step(self) -> tuple[list[AudioChunk], list[tuple[object, int]]]:
        changes, self._unsent = self._unsent, []
        return self._took(self.call("step", changes))

    def background_work(self) -> bool:
        answer = self.call("background")
        self._took(answer)
        return answer.worked

    def finish(self) -> list[AudioChunk]:
        return self._took(self.call("finish"))[0]

    def cancel_pending(self) -> list[object]:
        """The changes not applied yet (those still here, and those waiting on the worker); a lost
        worker's are dropped with it."""
        ids = [change.token for change in self._unsent]
        self._unsent = []
        if not self._lost:
            try:
                ids += self.call("cancel_pending")
            except RiffdError:
                pass
        return [self._tokens.pop(int(token)) for token in ids if int(token) in self._tokens]  # type: ignore[call-overload]

    def snapshot(self) -> tuple[bytes, int]:
        """The worker's snapshot; changes submitted since the last step go first, so that the snapshot
        holds them waiting, as a local jam's does."""
        changes, self._unsent = self._unsent, []
        state, offset = self.call("snapshot", changes)
        return state, int(offset)

    def close(self) -> None:
        """Free the worker's caches and the jam's place there (once; a lost worker has nothing to free)."""
        if self._closed:
            return
        self._closed = True
        try:
            if not self._lost:
                self.call("close")
        except RiffdError:
            pass
        finally:
            self._cluster.release(self.worker, self.jam_id)

    def call(self, op: str, *args: Any) -> Any:
        """`op` on this jam on its worker; the worker's error as a RiffdError, its loss as WorkerLost."""
        try:
            answer = self._cluster.call(self.worker, "jam", self.jam_id, op, *args)
        except WorkerGone as gone:
            self._lost = True
            self._cluster.mark_lost(gone)
            raise WorkerLost(f"cluster worker {gone.worker} on node {gone.node[:12] or '?'} was lost during the jam "
                             f"({gone.reason})") from None
        if isinstance(answer, ErrorItem):
            raise RiffdError(answer.message, code=answer.code)
        return answer

    def _took(self, answer: JamStep) -> tuple[list[AudioChunk], list[tuple[object, int]]]:
        self.emitted_samples, self.generated_samples = answer.emitted_samples, answer.generated_samples
        blocks = [AudioChunk(item.index, item.offset_samples, item.audio, item.sample_rate, item.stage, item.beat)
                  for item in answer.blocks]
        applied = [(self._tokens.pop(token), frame) for token, frame in answer.applied if token in self._tokens]
        return blocks, applied
