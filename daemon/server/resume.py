"""Starting on a folder an earlier daemon served (issue 18): its OSC subscribers and its journaled
jobs, queued again with the way back to whoever asked for them."""

from __future__ import annotations

import dataclasses
import logging
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
from protocol.messages import JobRequest

if TYPE_CHECKING:
    from collections.abc import Callable

    from daemon.server.handlers import RequestHandler

log = logging.getLogger(__name__)


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
            return ZmqReply(zmq, envelope, quiet=True)
    except (KeyError, ValueError, TypeError):
        log.warning("journal: job %s: its requester's address is unusable", entry.job_id)
    return Unreachable(transport="osc" if transport == "osc.tcp" else "journal")
