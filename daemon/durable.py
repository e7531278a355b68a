"""Durable work (issue 18): the scheduler's journal hooks, and which jobs they keep.

Jobs that write files (saved takes, saved Jukebox renders) are journaled when accepted, marked
running with their seed when they start, and forgotten when they end, unless they end because
the daemon stops: those, like the ones a crash interrupts, a daemon started on the same folder
resumes (`Daemon` reads the journal at start). Live unsaved jobs and jams are not journaled:
nobody could hear them again.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from daemon.jobs import Job
from daemon.journal import Journal, JournalEntry, write_atomic
from daemon.seeds import draw_seed
from protocol import wire
from protocol.errors import ShuttingDown
from protocol.messages import Accepted, Error, Event, Started

log = logging.getLogger(__name__)

SUBSCRIBERS_FILE = "subscribers.json"


class DurableJobs:
    """Journals the jobs worth resuming; every call is cheap for the others."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    @staticmethod
    def wants(job: Job) -> bool:
        return job.save and job.jam is None

    def accepted(self, job: Job, resumed: JournalEntry | None = None) -> None:
        """Called by the scheduler once `job` passed its checks, before `accepted` is sent."""
        if not self.wants(job):
            return
        try:
            self.journal.record_accepted(job.id, model=job.model, save=job.save, reply=reply_address(job.reply),
                                         frames=wire.encode(job.request),
                                         accepted_ns=resumed.accepted_ns if resumed else None,
                                         fresh=resumed is None)
        except (OSError, ValueError) as exc:
            # The job still runs; it just would not survive a restart.
            log.error("journal: job %s not journaled: %s", job.id, exc)
            return
        job.checkpoint = self.journal.checkpoint(job.id)

    def started(self, job: Job) -> None:
        """Called on the worker as `job` starts: its seed is fixed now and journaled, so a resumed
        render samples with the same one."""
        if job.checkpoint is None:
            return
        if job.params.seed is None:
            job.params = dataclasses.replace(job.params, seed=draw_seed())
        assert job.params.seed is not None
        try:
            self.journal.record_started(job.id, job.params.seed)
        except OSError as exc:
            log.error("journal: job %s: start not journaled: %s", job.id, exc)

    def finished(self, job: Job, event: Event) -> None:
        """Its one terminal event: forget the job, unless the daemon is stopping (then it resumes)."""
        if job.checkpoint is None:
            return
        if isinstance(event, Error) and event.code == ShuttingDown.code:
            log.info("journal: job %s stays journaled; the next daemon on this folder resumes it", job.id)
            return
        self.journal.forget(job.id)


def reply_address(reply: Any) -> dict[str, Any] | None:
    """Where a job's events went, as the journal keeps it: an OSC UDP address or a ZeroMQ routing
    id (a client that reconnects with the same identity hears the resumed job). An OSC TCP
    connection cannot be reached again."""
    key: Hashable = getattr(reply, "key", None)
    if isinstance(key, tuple) and len(key) == 3 and key[0] in ("osc.udp", "osc.tcp"):
        return {"transport": key[0], "host": str(key[1]), "port": int(key[2])}
    if isinstance(key, tuple) and len(key) == 2 and key[0] == "zmq" and isinstance(key[1], bytes):
        envelope = getattr(reply, "envelope", (key[1],))
        return {"transport": "zmq", "identity": key[1].hex(), "delimiter": len(envelope) > 1}
    return None


class Reconnections:
    """Resumed jobs whose ZeroMQ requester may be away: its client reconnects on its own (every
    100 ms, libzmq's default), so the daemon gives it a moment before the jobs start (`waiting`,
    `back`); one that comes later, the first time it is heard from, is told `accepted` (and
    `started`, if it has) for each of them: their events before it was back were dropped."""

    def __init__(self) -> None:
        self._waiting: dict[Hashable, list[Job]] = {}
        self._started: dict[str, Started] = {}

    def expect(self, job: Job) -> None:
        key = getattr(job.reply, "key", None)
        if isinstance(key, tuple) and key and key[0] == "zmq":
            self._waiting.setdefault(key, []).append(job)

    def waiting(self) -> list[Job]:
        """The resumed jobs whose requester has not been heard from (nor reached) since the start."""
        return [job for jobs in self._waiting.values() for job in jobs]

    def back(self, job: Job) -> None:
        """`job`'s requester was reached (it heard the job's `accepted`): nothing to repeat to it."""
        key = getattr(job.reply, "key", None)
        jobs = [other for other in self._waiting.get(key, []) if other is not job]
        if jobs:
            self._waiting[key] = jobs
        else:
            self._waiting.pop(key, None)

    def saw(self, job: Job, event: Event) -> None:
        """Every event a job emits (any thread): a resumed job's `started` is kept to repeat."""
        if job.resumed and isinstance(event, Started):
            self._started[job.id] = event

    def heard_from(self, reply: Any) -> None:
        """A request came from `reply`'s peer (on the event loop)."""
        if not self._waiting:
            return
        for job in self._waiting.pop(getattr(reply, "key", None), []):
            if job.finished:
                continue
            reply.send(Accepted(job=job.id, queue_position=0, re=job.re))
            started = self._started.pop(job.id, None)
            if started is not None:
                reply.send(started)


def save_subscribers(journal: Journal, keys: list[Hashable]) -> None:
    """Keep the OSC UDP subscribers (a Max or Pd listener's port) for the next daemon on this folder:
    a listener that subscribed once hears the jobs resumed after a restart without subscribing again.
    TCP subscriptions end with their connection and are not kept."""
    udp = [[str(key[1]), int(key[2])] for key in keys
           if isinstance(key, tuple) and len(key) == 3 and key[0] == "osc.udp"]
    try:
        write_atomic(journal.folder / SUBSCRIBERS_FILE, json.dumps(udp).encode())
    except OSError as exc:
        log.error("journal: subscribers not kept: %s", exc)


def load_subscribers(journal: Journal) -> list[tuple[str, int]]:
    """The OSC UDP subscribers an earlier daemon kept (unreadable: reported, none)."""
    path = journal.folder / SUBSCRIBERS_FILE
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_bytes())
        return [(str(host), int(port)) for host, port in data if 0 < int(port) < 65536]
    except (OSError, ValueError, TypeError) as exc:
        log.warning("journal: %s is unreadable (%s); no subscribers restored", path.name, exc)
        return []


@dataclass(frozen=True)
class Unreachable:
    """The requester of a resumed job when it cannot be reached again (an OSC TCP connection, or
    none was known); its events still go to the subscribers and the monitors."""

    transport: str = "journal"
    key: Hashable = None
    host: str | None = None

    def send(self, event: Event) -> None:
        pass


__all__ = ["DurableJobs", "Reconnections", "Unreachable", "load_subscribers", "reply_address", "save_subscribers"]
