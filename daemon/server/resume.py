"""Starting on a folder an earlier daemon served (issue 18): its OSC subscribers and its journaled
jobs, queued again with the way back to whoever asked for them."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import TYPE_CHECKING

from daemon.durable import Reconnections, Unreachable, load_subscribers, save_subscribers
from daemon.journal import Journal, JournalEntry
from daemon.scheduler import Scheduler
from daemon.server.access import SourceFilter
from daemon.server.osc_endpoint import OscEndpoint, OscReply
from daemon.server.router import EventRouter, Reply
from daemon.server.zmq_endpoint import ZmqEndpoint, ZmqReply
from protocol import wire
from protocol.errors import BadMessage, RiffdError, Unsupported
from protocol.messages import Accepted, Event, JobRequest

if TYPE_CHECKING:
    from collections.abc import Callable

    from daemon.server.handlers import RequestHandler

log = logging.getLogger(__name__)

#: How long resumed jobs wait for their ZeroMQ requesters to reconnect before they start: a client
#: socket tries every 100 ms (libzmq's default), so this covers a loaded machine; the start is late
#: only while a resumed job's client is missing (it may have ended with the daemon).
RECONNECT_GRACE_S = 2.0
#: How often an absent requester is tried meanwhile.
RECONNECT_POLL_S = 0.02


def resume_jobs(journal: Journal, handler: RequestHandler, scheduler: Scheduler, reconnections: Reconnections,
                reply_for: Callable[[JournalEntry], Reply]) -> list[str]:
    """Queue again every intact journaled job (running ones first, then in the order they came),
    checked as new requests; return their ids. One whose request is damaged is set aside; one that
    is refused now is reported and dropped; neither stops the others."""
    resumed = []
    for entry in journal.read():
        try:
            request = journaled_request(entry)
        except (RiffdError, ValueError, TypeError, KeyError, RecursionError) as exc:
            journal.set_aside(entry.job_id, exc.message if isinstance(exc, RiffdError) else f"{type(exc).__name__}: {exc}")
            continue
        try:
            handler.resume(request, reply_for(entry), entry)
        except RiffdError as exc:
            log.error("journal: job %s cannot be resumed (%s: %s); dropped", entry.job_id, exc.code, exc.message)
            journal.forget(entry.job_id)
            continue
        how = "queued, from the start"
        if entry.running:
            how = (f"running, from its checkpoint at {entry.done} of {entry.total}" if entry.done
                   else "running, from the start")
        log.info("journal: resumed job %s (%s, %s)", entry.job_id, entry.model, how)
        resumed.append(entry.job_id)
        job = scheduler.find(entry.job_id)
        if job is not None:
            reconnections.expect(job)
    if resumed:
        log.info("journal: resumed %d job(s) accepted by an earlier daemon on %s", len(resumed), journal.folder)
    return resumed


def journaled_request(entry: JournalEntry) -> JobRequest:
    """The request of `entry`, under the entry's job id: one that came without an id (the daemon
    picked it) keeps the one picked, so its file name, its clients and its journal entry stay the
    same; RiffdError if the frames are not a job request of that job."""
    request = wire.decode_request(list(entry.frames))
    if not isinstance(request, JobRequest):
        raise Unsupported(f"a journaled {request.TYPE} request cannot be resumed")
    if request.job is None:
        return dataclasses.replace(request, job=entry.job_id)
    if request.job != entry.job_id:
        raise BadMessage(f"its request is job {request.job!r}, not {entry.job_id!r}")
    return request


async def await_requesters(reconnections: Reconnections, grace_s: float) -> None:
    """Before the resumed jobs start, give their ZeroMQ requesters up to `grace_s` to reconnect, so
    that a client still reading a job's stream hears it from its `accepted` and its first chunk on.
    Each is sent its job's `accepted` until it arrives (unless the first one, sent as the job was
    resumed, did: that happens on the loop first)."""
    await asyncio.sleep(0)  # the `accepted` events of resume_jobs go out (call_soon_threadsafe) first
    missing = [(job, job.reply) for job in reconnections.waiting() if isinstance(job.reply, ResumedZmqReply)]
    if missing:
        log.info("journal: waiting up to %.0f s for the clients of %d resumed job(s) to reconnect", grace_s,
                 len(missing))
    deadline = time.monotonic() + grace_s
    while missing:
        for job, reply in missing:
            if not reply.reached:
                reply.send(Accepted(job=job.id, queue_position=0, re=job.re))
            if reply.reached:
                reconnections.back(job)
        missing = [(job, reply) for job, reply in missing if not reply.reached]
        if not missing or time.monotonic() > deadline:
            break
        await asyncio.sleep(RECONNECT_POLL_S)
    for job, _ in missing:
        log.info("journal: the client of job %s is not back; it hears the job if it reconnects", job.id)


def restore_subscribers(journal: Journal, router: EventRouter, osc: OscEndpoint, source_filter: SourceFilter) -> None:
    """The OSC UDP subscribers an earlier daemon kept, still on the allow-list; from now on every
    change is kept for the next daemon."""
    restored = []
    for host, port in load_subscribers(journal):
        if not source_filter.allows(host):
            continue
        try:
            router.subscribe(OscReply(osc, (host, port)))
        except RiffdError as exc:  # more than the router takes (an edited file): the rest are dropped
            log.warning("journal: OSC subscriber %s:%d not restored: %s", host, port, exc.message)
            break
        restored.append((host, port))
    if restored:
        log.info("journal: OSC subscribers kept from an earlier daemon: %s",
                 ", ".join(f"{host}:{port}" for host, port in restored))
    router.on_subscribers_changed = lambda: save_subscribers(journal, router.subscriber_keys())


def reply_for(entry: JournalEntry, osc: OscEndpoint | None, zmq: ZmqEndpoint | None,
              source_filter: SourceFilter) -> Reply:
    """The way back to a resumed job's requester, where one still exists: its OSC UDP address (if
    still allowed) or its ZeroMQ routing id (quiet while that client is away)."""
    address = entry.reply or {}
    transport = address.get("transport")
    try:
        if transport == "osc.udp" and osc is not None and source_filter.allows(str(address["host"])):
            return OscReply(osc, (str(address["host"]), int(address["port"])))
        if transport == "zmq" and zmq is not None:
            envelope = (bytes.fromhex(str(address["identity"])),) + ((b"",) if address.get("delimiter") else ())
            return ResumedZmqReply(ZmqReply(zmq, envelope))
    except (KeyError, ValueError, TypeError):
        log.warning("journal: job %s: its requester's address is unusable", entry.job_id)
    return Unreachable(transport="osc" if transport == "osc.tcp" else "journal")


class ResumedZmqReply:
    """The way back to a resumed job's ZeroMQ requester, who may be away for now (its socket
    reconnects on its own) or for good: events to it are dropped quietly while it is, its absence
    cancels nothing, and `reached` says whether one got through since this daemon started."""

    transport = "zmq"

    def __init__(self, reply: ZmqReply) -> None:
        self._reply = reply
        self.reached = False

    @property
    def key(self) -> tuple[str, bytes]:
        return self._reply.key

    @property
    def host(self) -> str | None:
        return self._reply.host

    @property
    def envelope(self) -> tuple[bytes, ...]:  # durable.reply_address journals it again
        return self._reply.envelope

    def send(self, event: Event) -> None:
        if self._reply.endpoint.send(self._reply.envelope, event, quiet=True):
            self.reached = True
