"""A job: one accepted audio request on its way through the queue, a worker and the sinks."""

from __future__ import annotations

import enum
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from protocol.errors import Cancelled, RiffdError
from protocol.messages import Event, JobRequest
from protocol.params import GenerationParams


class JobState(enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"


def new_job_id() -> str:
    """A daemon-chosen job id: sortable by time, unique without coordination."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


@dataclass(eq=False)
class Job:
    """Mutable state of one job; the scheduler's lock guards `state`, `_stop_error` is set once.

    `reply` is the transport's handle on the requester (opaque here); `wants_chunk_files`
    says, at each chunk, whether any listener needs the chunk as a file (OSC clients do).
    """

    id: str
    request: JobRequest
    model: str
    params: GenerationParams
    reply: Any = None
    re: str | None = None
    save: bool = False
    wants_chunk_files: Callable[[], bool] = lambda: False
    # Set by the scheduler while the job runs: runs the queued jobs that outrank this one on this
    # worker, then returns. A long render (Jukebox) calls it between tokens, so a live request
    # sent meanwhile does not wait hours for the worker.
    yield_to_higher: Callable[[], None] = lambda: None
    # A job in time (daemon.tempo.take.TakeState): set by the runner when the job starts.
    take: Any = None
    # A jam's inbox (daemon.jam.control.JamControl): a jam runs on its own thread until stopped.
    jam: Any = None
    # Durable work (issue 18): the job's journal checkpoint (daemon.journal.JobCheckpoint) when it is
    # journaled, and whether it was resumed from the journal of an earlier daemon.
    checkpoint: Any = None
    resumed: bool = False
    state: JobState = JobState.QUEUED
    created_at: float = field(default_factory=time.monotonic)
    seq: int = 0
    stop_requested: threading.Event = field(default_factory=threading.Event)
    _stop_error: RiffdError | None = None
    _finished: bool = False
    _finish_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def client(self) -> object | None:
        """Who asked (the transport's peer key), for per-client limits; None if unknown."""
        return getattr(self.reply, "key", None)

    @property
    def priority(self) -> int:
        return self.request.priority

    def sort_key(self) -> tuple[int, int]:
        """Heap order: higher priority first, then first come, first served."""
        return (-self.priority, self.seq)

    def request_stop(self, error: RiffdError | None = None) -> None:
        """Ask the running job to stop; it ends with `error` (default: cancelled)."""
        if self._stop_error is None:
            self._stop_error = error or Cancelled(f"job {self.id} was cancelled")
        self.stop_requested.set()

    @property
    def stop_error(self) -> RiffdError:
        return self._stop_error or Cancelled(f"job {self.id} was cancelled")

    def claim_terminal(self) -> bool:
        """True exactly once: the caller may send the job's one done or error event."""
        with self._finish_lock:
            if self._finished:
                return False
            self._finished = True
            return True

    @property
    def finished(self) -> bool:
        return self._finished


#: Emits a job's event; safe to call from any thread (the server hops to its loop).
Emit = Callable[[Job, Event], None]
