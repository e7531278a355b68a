"""ZeroMQ: a ROUTER for requests (each job's events go back to its requester, in order) and a
PUB socket carrying every event for monitors (topic: the event type).

Clients use DEALER sockets. A REQ-style empty delimiter frame is tolerated and echoed, though
a REQ socket can only read the first event of a stream.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

import zmq
import zmq.asyncio
from zmq.utils.monitor import parse_monitor_message

from daemon.server.access import CurveGuard, CurveServerKeys
from daemon.server.peers import PeerGate
from protocol import wire
from protocol.errors import RiffdError
from protocol.messages import Error, Event, Request

log = logging.getLogger(__name__)

#: Events queued for one peer that does not read before it is treated as gone (with chunks of
#: a second of audio this is minutes of backlog, yet bounded memory).
SEND_HWM = 1000

Handler = Callable[[Request, "ZmqReply"], None]
#: Called with a request refused before the handler saw it (undecodable, over a limit).
Refused = Callable[["ZmqReply", Error], None]


@dataclass(frozen=True)
class ZmqReply:
    """The way back to one DEALER peer."""

    endpoint: "ZmqEndpoint"
    envelope: tuple[bytes, ...]  # routing id, plus the empty delimiter of REQ-style peers
    transport: str = "zmq"
    host: str | None = field(default=None, compare=False)  # the peer's IP address, when libzmq says it

    @property
    def key(self) -> tuple[str, bytes]:
        return ("zmq", self.envelope[0])

    def send(self, event: Event) -> None:
        self.endpoint.send(self.envelope, event)


class ZmqEndpoint:
    def __init__(self, host: str, port: int, pub_port: int, handler: Handler,
                 on_peer_gone: Callable[[tuple[str, bytes]], None], *, curve: CurveServerKeys | None = None,
                 peers: PeerGate | None = None, on_refused: Refused | None = None) -> None:
        self._context = zmq.asyncio.Context()
        self._handler = handler
        self._peers = peers
        self._on_refused: Refused = on_refused or (lambda reply, error: reply.send(error))
        self._on_peer_gone = on_peer_gone
        # With keys, both sockets are Curve servers: unknown clients fail the handshake.
        self._guard = CurveGuard(self._context, curve) if curve is not None else None
        self._router = self._context.socket(zmq.ROUTER)
        self._router.setsockopt(zmq.ROUTER_MANDATORY, 1)  # a vanished peer raises, so its jobs can be cancelled
        self._router.setsockopt(zmq.SNDHWM, SEND_HWM)
        # A bigger message is dropped by libzmq before it reaches us (and its peer disconnected), so
        # riffd's clients refuse to send one; headers are further limited with an error reply.
        self._router.setsockopt(zmq.MAXMSGSIZE, wire.MAX_MESSAGE_BYTES)
        self._router.setsockopt(zmq.LINGER, 500)
        self._pub = self._context.socket(zmq.PUB)
        self._pub.setsockopt(zmq.LINGER, 0)
        if self._guard is not None:
            self._guard.secure(self._router)
            self._guard.secure(self._pub)
        # Connections come and go without a message: the socket monitor tells the peer gate.
        self._monitor = (self._router.get_monitor_socket(zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED)
                         if peers is not None else None)
        self.endpoint = _bind(self._router, host, port)
        self.pub_endpoint = _bind(self._pub, host, pub_port)
        self._task: asyncio.Task[None] | None = None
        self._monitor_task: asyncio.Task[None] | None = None

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._serve(), name="riffd-zmq")
        if self._monitor is not None:
            self._monitor_task = loop.create_task(self._watch_connections(), name="riffd-zmq-monitor")

    async def _watch_connections(self) -> None:
        assert self._monitor is not None and self._peers is not None
        while True:
            message = parse_monitor_message(await self._monitor.recv_multipart())
            if message["event"] == zmq.EVENT_ACCEPTED:
                self._peers.connected(int(message["value"]))
            elif message["event"] == zmq.EVENT_DISCONNECTED:
                self._peers.disconnected(int(message["value"]))

    async def _serve(self) -> None:
        while True:
            # Frames (not bytes) carry the connection's descriptor and address.
            parts = await self._router.recv_multipart(copy=False)
            frames = [part.bytes for part in parts]
            envelope, body = _split_envelope(frames)
            reply = ZmqReply(self, envelope, host=_peer_address(parts[-1]))
            try:
                refusal = self._peers.check(_source_fd(parts[-1]), envelope[0]) if self._peers is not None else None
                if refusal is not None:
                    request_id, job = wire.reply_ids(body)
                    self._on_refused(reply, Error(job=job, code=refusal.code, message=refusal.message, re=request_id))
                    continue
                self._handle(body, reply)
            except Exception as exc:  # noqa: BLE001 - one message must never end the endpoint's loop
                log.exception("zmq: handling a message failed")
                try:
                    reply.send(Error(job="", code="internal", message=f"{type(exc).__name__}: {exc}"[:1000]))
                except Exception:  # noqa: BLE001 - the peer may be gone too; the loop goes on regardless
                    log.exception("zmq: could not report the failure")

    def _handle(self, body: list[bytes], reply: ZmqReply) -> None:
        try:
            request = wire.decode_request(body)
        except RiffdError as exc:
            request_id, job = wire.reply_ids(body)
            log.info("zmq: refused a message: %s", exc.message)
            self._on_refused(reply, Error(job=job, code=exc.code, message=exc.message, re=request_id))
            return
        self._handler(request, reply)

    def send(self, envelope: tuple[bytes, ...], event: Event, *, quiet: bool = False) -> bool:
        """Send `event` to a peer; whether it went. A peer that is gone or not reading has its jobs
        stopped, unless `quiet` (a resumed job's requester, who may be away for now, or for good)."""
        frames = [*envelope, *wire.encode(event)]
        try:
            _send_now(self._router, frames)
            return True
        except zmq.Again:
            if not quiet:
                log.warning("zmq: peer %s is not reading; dropping it", envelope[0].hex())
                self._on_peer_gone(("zmq", envelope[0]))
        except zmq.ZMQError as exc:
            if exc.errno != zmq.EHOSTUNREACH:
                raise
            if not quiet:
                log.info("zmq: peer %s is gone", envelope[0].hex())
                self._on_peer_gone(("zmq", envelope[0]))
        return False

    def publish(self, event: Event) -> None:
        try:
            _send_now(self._pub, [event.TYPE.encode(), *wire.encode(event)])
        except zmq.Again:
            pass  # a slow monitor loses events; it must never stall the daemon

    async def close(self) -> None:
        for task in (self._task, self._monitor_task):
            if task is not None:
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
        if self._monitor is not None:
            self._router.disable_monitor()
            self._monitor.close()
        self._router.close()
        self._pub.close()
        if self._guard is not None:
            self._guard.stop()
        self._context.term()


def _send_now(socket: zmq.asyncio.Socket, frames: list[bytes]) -> None:
    """Send without waiting; raise zmq.Again / ZMQError here rather than into a future."""
    # zmq.asyncio returns an asyncio Future, typed only as an Awaitable.
    future = cast("asyncio.Future[object]", socket.send_multipart(frames, flags=zmq.DONTWAIT, copy=False))
    exc = future.exception() if future.done() else None
    if exc is not None:
        raise exc


def _bind(socket: zmq.asyncio.Socket, host: str, port: int) -> str:
    socket.bind(f"tcp://{host}:{port if port else '*'}")
    return socket.getsockopt_string(zmq.LAST_ENDPOINT)


def _source_fd(frame: zmq.Frame) -> int | None:
    """The descriptor of the connection a message came by (None if libzmq does not say)."""
    try:
        fd = frame.get(zmq.SRCFD)
    except (zmq.ZMQError, AttributeError):
        return None
    return fd if isinstance(fd, int) and fd >= 0 else None


def _peer_address(frame: zmq.Frame) -> str | None:
    try:
        address = frame.get("Peer-Address")
    except zmq.ZMQError:
        return None
    return address if isinstance(address, str) and address else None


def _split_envelope(frames: list[bytes]) -> tuple[tuple[bytes, ...], list[bytes]]:
    """(envelope, body) of a ROUTER message: `[id, b"", body...]` from a REQ peer, `[id, body...]`.

    An empty second frame is a REQ delimiter only when a body follows it: a REQ socket never
    sends an empty message, so `[id, b""]` is a DEALER's one empty frame, kept as the body so that
    it is refused as a bad message in the framing its sender reads.
    """
    if len(frames) >= 3 and frames[1] == b"":
        return (frames[0], b""), frames[2:]
    return (frames[0],), frames[1:]
