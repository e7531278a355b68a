"""The daemon at a glance: every job of every client with its progress, as the studio shows it.

The scheduler says which jobs are queued or running (with priorities and queue positions); the
events every job emits (seen as a monitor, like ZeroMQ's PUB socket) add their progress, seed
and Jukebox stage. Only a dict update per event, so it costs nothing worth counting when no
browser is looking.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

from daemon.scheduler import JobView
from protocol.messages import Accepted, Chunk, Done, Error, Event, Progress, Started

#: Finished jobs the board keeps showing (with how they ended).
RECENT_JOBS = 12


@dataclass
class Live:
    """What events told about one job."""

    done: int = 0
    total: int = 0
    stage: str = ""
    seed: int | None = None
    sample_rate: int = 0
    chunks: int = 0


@dataclass(frozen=True)
class Ended:
    job: str
    outcome: str  # "done", or the error code
    message: str
    at: float


class Board:
    """Live progress by job id, and the jobs that ended lately."""

    def __init__(self) -> None:
        self._live: dict[str, Live] = {}
        self._ended: deque[Ended] = deque(maxlen=RECENT_JOBS)

    def see(self, event: Event) -> bool:
        """Take in one event; True if the board changed in a way worth redrawing now."""
        job = getattr(event, "job", "")
        if not job:
            return False
        if isinstance(event, Accepted):
            self._live.setdefault(job, Live())
            return True
        if isinstance(event, Progress):
            live = self._live.setdefault(job, Live())
            live.done, live.total = event.done, event.total
            return True
        if isinstance(event, Started):
            live = self._live.setdefault(job, Live())
            live.seed, live.sample_rate = event.seed, event.sample_rate
            return True
        if isinstance(event, Chunk):
            live = self._live.setdefault(job, Live())
            changed = live.stage != event.stage
            live.stage, live.chunks = event.stage, live.chunks + 1
            return changed
        if isinstance(event, (Done, Error)):
            if self._live.pop(job, None) is None:
                return False  # a request refused before it was a job: not the board's business
            outcome = "done" if isinstance(event, Done) else event.code
            self._ended.append(Ended(job, outcome, "" if isinstance(event, Done) else event.message, time.time()))
            return True
        return job in self._live  # applied, snapshot, ...: a jam changed

    def view(self, jobs: list[JobView]) -> dict[str, Any]:
        rows = []
        for job in jobs:
            row = asdict(job)
            live = self._live.get(job.id)
            if live is not None:
                row.update(asdict(live))
            rows.append(row)
        return {"jobs": rows, "ended": [asdict(ended) for ended in reversed(self._ended)]}


__all__ = ["Board"]
