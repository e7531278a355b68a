"""The scheduler: a bounded priority queue, cancel, and the worker threads of one device.

`submit`, `cancel` and `close` are called from the server's event loop and never block on
generation; workers take jobs highest priority first (first come, first served within a
priority) and run them through the JobRunner. Events go out through `emit`, which must be
safe to call from any thread; the scheduler makes sure a job's one terminal event is its
last.

Jobs run one at a time, except where the resident model says jobs like the next one share its
decode steps (`MusicBackend.concurrent_jobs`, continuous batching): then the next job in line
starts beside running jobs of the same model while fewer than that many run. Only the job at
the head of the queue ever starts, so a queued render is never overtaken by later live jobs and
a live job is never overtaken by queued renders.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from daemon.jobs import Emit, Job, JobState
from daemon.residency import ModelPool
from daemon.runner import JobRunner
from protocol.errors import (
    Cancelled, DuplicateJob, NotFound, QueueFull, RiffdError, ShuttingDown, TooManyJobs, Unsupported,
)
from protocol.messages import TERMINAL_EVENTS, Accepted, Done, Error, Event

if TYPE_CHECKING:
    from daemon.durable import DurableJobs
    from daemon.journal import JournalEntry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobView:
    """What a monitor (the web studio) shows of one queued or running job."""

    id: str
    kind: str  # the request's type: generate, continue, jukebox_sample, ...
    model: str
    priority: int
    client: str  # the transport it came by: osc, zmq, web
    state: str  # "running" or "queued"
    position: int  # place in the queue (0: next); -1 while running
    prompt: str
    duration_s: float


@dataclass(frozen=True)
class QueueSnapshot:
    """Job ids running (in start order) and queued (in run order)."""

    running: tuple[str, ...]
    queued: tuple[str, ...]


class Scheduler:
    """Queue and workers for one device's model pool."""

    def __init__(self, pool: ModelPool, runner: JobRunner, emit: Emit, *, max_queue: int = 16,
                 max_per_client: int | None = None, workers: int = 1, idle_tick_s: float = 1.0,
                 max_jams: int = 4, durable: DurableJobs | None = None) -> None:
        self._max_jams = max_jams
        self._durable = durable
        self._jam_threads: list[threading.Thread] = []
        self._pool = pool
        self._max_per_client = max_per_client
        self._runner = runner
        self._emit = emit
        self._max_queue = max_queue
        self._idle_tick_s = idle_tick_s
        self._heap: list[tuple[tuple[int, int], Job]] = []
        self._jobs: dict[str, Job] = {}  # queued and running, by id
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._closing = False
        self._threads = [
            threading.Thread(target=self._work, name=f"riffd-worker-{pool.device}-{n}", daemon=True)
            for n in range(workers)
        ]

    @property
    def max_queue(self) -> int:
        return self._max_queue

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def submit(self, job: Job, resumed: JournalEntry | None = None) -> None:
        """Queue `job` and emit `accepted`; raise QueueFull / DuplicateJob / ShuttingDown at once.

        `resumed`: the journal entry of a job an earlier daemon accepted; it is not held to the
        queue's limits (it was within them when it came) and keeps its journal entry.
        """
        with self._cond:
            if self._closing:
                raise ShuttingDown("the daemon is shutting down")
            if job.id in self._jobs:
                raise DuplicateJob(f"job {job.id} is already queued or running; pick another id")
            if resumed is None and job.jam is None and len(self._heap) >= self._max_queue:
                raise QueueFull(f"the queue is full ({self._max_queue} jobs waiting); try again later")
            if job.jam is not None:
                jams = sum(1 for other in self._jobs.values() if other.jam is not None)
                if self._max_jams == 0:
                    raise Unsupported("this daemon runs no jams (--max-jams 0)")
                if jams >= self._max_jams:
                    raise TooManyJobs(f"{jams} jams are running, the most this daemon runs at once (--max-jams); "
                                      "stop one first")
            client = job.client
            if resumed is None and self._max_per_client is not None and client is not None:
                # One client must not fill the queue for everyone else.
                mine = sum(1 for other in self._jobs.values() if other.client == client)
                if mine >= self._max_per_client:
                    raise TooManyJobs(f"this client already has {mine} jobs queued or running (at most "
                                      f"{self._max_per_client}); wait for one to end")
            job.seq = next(self._seq)
            if job.jam is not None:
                # A jam is live and endless: it starts now on a thread of its own, queued behind nothing
                # and holding no worker (several jams and the queue's renders run side by side).
                job.state = JobState.RUNNING
                self._jobs[job.id] = job
                self._emit(job, Accepted(job=job.id, queue_position=0, re=job.re))
                thread = threading.Thread(target=self._run, args=(job,), name=f"riffd-jam-{job.id}", daemon=True)
                self._jam_threads = [t for t in self._jam_threads if t.is_alive()] + [thread]
                thread.start()
                return
            job.state = JobState.QUEUED
            job.resumed = resumed is not None
            if self._durable is not None:
                self._durable.accepted(job, resumed)  # on disk before anyone is told it was accepted
            ahead = sum(1 for key, _ in self._heap if key < job.sort_key())
            heapq.heappush(self._heap, (job.sort_key(), job))
            self._jobs[job.id] = job
            # Emitted under the lock so no worker event of this job can overtake it.
            self._emit(job, Accepted(job=job.id, queue_position=ahead, re=job.re))
            self._cond.notify_all()

    def cancel(self, job_id: str, error: RiffdError | None = None) -> None:
        """Cancel a queued job (it ends now) or a running one (it ends within a decode step)."""
        with self._cond:
            job = self._jobs.get(job_id)
            if job is None:
                raise NotFound(f"no queued or running job {job_id!r}")
            if job.state is JobState.QUEUED:
                self._heap = [(key, queued) for key, queued in self._heap if queued is not job]
                heapq.heapify(self._heap)
                del self._jobs[job_id]
                job.state = JobState.FINISHED
                error = error or Cancelled(f"job {job_id} was cancelled before it started")
                self._finish(job, Error(job=job.id, code=error.code, message=error.message, re=job.re))
                return
        job.request_stop(error)

    def snapshot(self) -> QueueSnapshot:
        with self._cond:
            running = tuple(job.id for job in self._jobs.values() if job.state is JobState.RUNNING)
            queued = tuple(job.id for _, job in sorted(self._heap, key=lambda item: item[0]))
        return QueueSnapshot(running, queued)

    def running_jams(self) -> tuple[str, ...]:
        with self._cond:
            return tuple(job.id for job in self._jobs.values() if job.jam is not None and job.state is JobState.RUNNING)

    def find(self, job_id: str) -> Job | None:
        """The queued or running job `job_id`, if any."""
        with self._cond:
            return self._jobs.get(job_id)
    def describe(self) -> list[JobView]:
        """Running jobs (in start order), then queued ones in run order, for a monitor's view."""
        with self._cond:
            running = [job for job in self._jobs.values() if job.state is JobState.RUNNING]
            queued = [job for _, job in sorted(self._heap, key=lambda item: item[0])]
        return [_view(job, "running", -1) for job in running] + \
            [_view(job, "queued", position) for position, job in enumerate(queued)]

    def jobs_of(self, predicate: Callable[[Job], bool]) -> list[str]:
        """Ids of queued and running jobs matching `predicate` (e.g. a vanished client's)."""
        with self._cond:
            return [job.id for job in self._jobs.values() if predicate(job)]

    def close(self, reason: str = "the daemon is shutting down") -> None:
        """Refuse new jobs, end queued ones and ask running ones to stop (with ShuttingDown)."""
        with self._cond:
            self._closing = True
            ids = list(self._jobs)
            self._cond.notify_all()
        for job_id in ids:
            try:
                self.cancel(job_id, ShuttingDown(reason))
            except NotFound:
                pass  # it finished meanwhile

    def join(self, timeout_s: float | None = None) -> bool:
        """Wait for the workers to exit (after close); True if they all did."""
        with self._cond:
            # Never started when the daemon's start failed after making the scheduler.
            threads = [thread for thread in self._threads + self._jam_threads if thread.ident is not None]
        for thread in threads:
            thread.join(timeout_s)
        return not any(thread.is_alive() for thread in threads)

    def _finish(self, job: Job, event: Event) -> None:
        if job.claim_terminal():
            # Forget the job before anyone hears it ended, so a status asked right after
            # `done` no longer lists it.
            with self._cond:
                job.state = JobState.FINISHED
                self._jobs.pop(job.id, None)
                self._cond.notify_all()  # a place may have freed for the next job in line
            if self._durable is not None:
                self._durable.finished(job, event)  # out of the journal before anyone hears it ended
            _log_outcome(job, event)
            self._emit(job, event)
        else:
            log.error("job %s: dropped a second terminal event %s", job.id, event.TYPE)

    def _emit_for(self, job: Job, event: Event) -> None:
        """The runner's emit: terminal events go through the exactly-once check."""
        if isinstance(event, TERMINAL_EVENTS):
            self._finish(job, event)
        elif not job.finished:
            self._emit(job, event)

    def _work(self) -> None:
        while True:
            with self._cond:
                job = self._startable()
                while job is None and not (self._closing and not self._heap):
                    if not self._cond.wait(self._idle_tick_s):
                        break
                    job = self._startable()
                if self._closing and not self._heap:
                    return
                if job is not None:
                    heapq.heappop(self._heap)
                    job.state = JobState.RUNNING
            if job is None:
                self._pool.expire()
                continue
            self._run(job)

    def _startable(self) -> Job | None:
        """The head of the queue if it may start now (called under the lock)."""
        if not self._heap:
            return None
        head = self._heap[0][1]
        # Jams run on threads of their own and hold no worker: they never keep a queued job waiting.
        running = [job for job in self._jobs.values() if job.state is JobState.RUNNING and job.jam is None]
        if not running:
            return head
        together = len(running) + 1
        if all(job.model == head.model and self._concurrent(job) >= together for job in [*running, head]):
            return head
        return None

    def _concurrent(self, job: Job) -> int:
        """How many jobs like `job` its model runs at once (1 until the model is resident)."""
        backend = self._pool.resident(job.model)
        return backend.concurrent_jobs(job) if backend is not None else 1

    def _run(self, job: Job) -> None:
        log.info("job %s: started (%s, %.1f s)", job.id, job.model, job.params.duration_s)
        job.yield_to_higher = partial(self._run_outranking, job)
        if self._durable is not None:
            self._durable.started(job)
        self._runner.run(job, self._emit_for)
        if not job.finished:  # a runner bug; the client still gets its ending
            self._finish(job, Error(job=job.id, code="internal", message="job ended without a result", re=job.re))

    def _run_outranking(self, current: Job) -> None:
        """Run the queued jobs of higher priority than `current` now, on this worker; `current`
        (paused between two tokens, its state kept) resumes when none is left."""
        while True:
            with self._cond:
                if self._closing or not self._heap or self._heap[0][1].priority <= current.priority:
                    return
                _, job = heapq.heappop(self._heap)
                job.state = JobState.RUNNING
            log.info("job %s: paused for job %s (priority %d over %d)", current.id, job.id, job.priority,
                     current.priority)
            self._run(job)
            log.info("job %s: resumed", current.id)


#: Codes of jobs stopped on purpose (a client's cancel, a vanished client, shutdown), not failures.
_CANCEL_CODES = frozenset({Cancelled.code, ShuttingDown.code})


def _log_outcome(job: Job, event: Event) -> None:
    """How a job ended, once, whichever path ended it (queued or running): a failure after `accepted`
    is otherwise seen only by its client."""
    if isinstance(event, Error) and event.code in _CANCEL_CODES:
        log.info("job %s: cancelled (%s): %s", job.id, event.code, event.message)
    elif isinstance(event, Error):
        log.warning("job %s: failed (%s): %s", job.id, event.code, event.message)
    else:
        assert isinstance(event, Done), event  # only terminal events end a job
        log.info("job %s: finished%s", job.id, f", saved to {event.path}" if event.path else "")


def _view(job: Job, state: str, position: int) -> JobView:
    prompt = getattr(job.request, "prompt", None) or getattr(job.request, "genres", None) or ""
    return JobView(id=job.id, kind=job.request.TYPE, model=job.model, priority=job.priority,
                   client=str(getattr(job.reply, "transport", "")), state=state, position=position,
                   prompt=prompt[:200], duration_s=float(getattr(job.request, "duration_s", None) or 0.0))
