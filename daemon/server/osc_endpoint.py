"""OSC over UDP and over TCP (OSC 1.0 length-prefixed stream framing, as liblo speaks it).

Replies go to the request's source: the UDP address it came from, or back down its TCP
connection; or, when a request names a `reply_port`, to that UDP port on the source's host
(a refusal too, even of a request that did not decode). Chunk events without a file (nobody asked for chunk files when the chunk was
written) are not sent over OSC: an OSC listener can only use audio as a file path.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from daemon.server.access import RateLimiter, SourceFilter
from protocol import osc
from protocol.errors import MessageTooLarge, RiffdError
from protocol.messages import Chunk, Error, Event, Models, Request, Status

log = logging.getLogger(__name__)

Handler = Callable[[Request, "OscReply"], None]
#: Called with a packet or message refused before the handler saw it (undecodable, unknown address).
Refused = Callable[["OscReply", Error], None]
#: Unsent bytes queued for one TCP peer before it is dropped.
MAX_TCP_BACKLOG_BYTES = 4 * 1024 * 1024
#: Open OSC TCP connections; more are closed at once (each costs a file descriptor and buffers,
#: and a daemon out of descriptors cannot write its audio files either).
MAX_TCP_CONNECTIONS = 64
#: Error texts and model lists are cut to these sizes over OSC (messages stay under 8 KB).
MAX_OSC_TEXT_CHARS = 1000
MAX_OSC_LIST_ITEMS = 8


@dataclass(frozen=True, eq=False)
class OscReply:
    """The way back to an OSC peer: a UDP address, or an open TCP connection."""

    endpoint: "OscEndpoint"
    address: tuple[str, int]  # the peer's (host, port): where UDP replies go
    connection: asyncio.StreamWriter | None = field(default=None)
    transport: str = "osc"

    @property
    def key(self) -> tuple[str, str, int]:
        return ("osc.tcp" if self.connection is not None else "osc.udp", *self.address)

    @property
    def host(self) -> str:
        return self.address[0]

    def send(self, event: Event) -> None:
        if isinstance(event, Chunk) and event.path is None:
            return
        event = _fit_for_osc(event)
        try:
            packet = osc.encode(event)
        except ValueError as exc:
            log.error("osc: %s event not sent: %s", event.TYPE, exc)
            return
        if self.connection is None:
            self.endpoint.send_udp(packet, self.address)
        elif not self.connection.is_closing():
            if self.connection.transport.get_write_buffer_size() > MAX_TCP_BACKLOG_BYTES:
                # A peer that stopped reading must not make the daemon buffer without end.
                log.warning("osc tcp: %s:%d is not reading; closing its connection", *self.address)
                self.connection.transport.abort()
                return
            self.connection.write(osc.frame_tcp(packet))


def _fit_for_osc(event: Event) -> Event:
    """Shorten what can grow without bound (error text, model lists) so the message fits OSC."""
    if isinstance(event, Error) and len(event.message) > MAX_OSC_TEXT_CHARS:
        return replace(event, message=event.message[: MAX_OSC_TEXT_CHARS - 3] + "...")
    if isinstance(event, Status) and len(event.models) > MAX_OSC_LIST_ITEMS:
        return replace(event, models=event.models[:MAX_OSC_LIST_ITEMS])
    if isinstance(event, Models) and len(event.loaded) > MAX_OSC_LIST_ITEMS:
        return replace(event, loaded=event.loaded[:MAX_OSC_LIST_ITEMS])
    return event


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, endpoint: "OscEndpoint") -> None:
        self._endpoint = endpoint

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if not self._endpoint.allows(addr[0]):
            return  # unread and unanswered: no reflection at a forged source address
        self._endpoint.handle_packet(data, OscReply(self._endpoint, (addr[0], addr[1])))

    def error_received(self, exc: Exception) -> None:
        # ICMP "port unreachable" from a listener that went away: nothing to do.
        log.debug("osc udp: %s", exc)


class OscEndpoint:
    def __init__(self, host: str, port: int, handler: Handler,
                 on_connection_closed: Callable[[OscReply], None], *,
                 source_filter: SourceFilter | None = None, rate_limiter: RateLimiter | None = None,
                 on_refused: Refused | None = None) -> None:
        self._on_refused: Refused = on_refused or (lambda reply, error: reply.send(error))
        self._source_filter = source_filter
        self._rate_limiter = rate_limiter
        self.refused_packets = 0
        self.dropped_over_rate = 0
        self._host = host
        self._requested_port = port
        self._handler = handler
        self._on_connection_closed = on_connection_closed
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.port = port

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        # UDP first, then TCP on the same number so one port serves both; with port 0 the
        # number UDP got may be taken for TCP, so try a few.
        for attempt in range(20):
            self._udp, _ = await loop.create_datagram_endpoint(
                lambda: _UdpProtocol(self), local_addr=(self._host, self._requested_port))
            self.port = self._udp.get_extra_info("sockname")[1]
            try:
                self._tcp = await asyncio.start_server(self._serve_connection, self._host, self.port)
                return
            except OSError:
                self._udp.close()
                if self._requested_port or attempt == 19:
                    raise

    def allows(self, host: str) -> bool:
        """Whether packets from `host` are read (counted when not)."""
        if self._source_filter is None or self._source_filter.allows(host):
            return True
        self.refused_packets += 1
        if self.refused_packets in (1, 10, 100, 1000) or self.refused_packets % 10000 == 0:
            log.warning("osc: dropped packets from %s, not on --osc-allow (%d so far)", host, self.refused_packets)
        return False

    def send_udp(self, packet: bytes, address: tuple[str, int]) -> None:
        if self._udp is not None and not self._udp.is_closing():
            self._udp.sendto(packet, address)

    def _within_rate(self, host: str) -> bool:
        """Whether `host` may send one more message now (--osc-rate-limit); counts and logs a drop."""
        if self._rate_limiter is None or self._rate_limiter.allows(host):
            return True
        self.dropped_over_rate += 1
        if self.dropped_over_rate in (1, 100) or self.dropped_over_rate % 10000 == 0:
            log.warning("osc: %s is over --osc-rate-limit; dropped %d messages so far", host, self.dropped_over_rate)
        return False

    def handle_packet(self, data: bytes, reply: OscReply) -> None:
        if not self._within_rate(reply.address[0]):
            # A flood is dropped unparsed, so it cannot take the loop (and the GIL) from the
            # ZeroMQ clients and the worker.
            return
        try:
            messages = osc.parse_packet(data)
        except RiffdError as exc:
            log.info("osc: refused a packet from %s: %s", reply.address, exc.message)
            self._on_refused(reply, Error(job="", code=exc.code, message=exc.message))
            return
        for index, (address, args) in enumerate(messages):
            # A bundle's messages count against the rate one by one (the packet paid for its first):
            # else one packet of 800 bad messages would be answered 800 times.
            if index and not self._within_rate(reply.address[0]):
                self.dropped_over_rate += len(messages) - index - 1  # the rest of the bundle with it
                return
            try:
                request = osc.decode_request(address, args)
            except RiffdError as exc:
                log.info("osc: refused %s from %s: %s", address, reply.address, exc.message)
                self._on_refused(self._refusal_reply(reply, address, args),
                                 Error(job=osc.job_hint(args, address), code=exc.code, message=exc.message))
                continue
            except Exception as exc:  # noqa: BLE001 - a decoder bug must not take the endpoint down
                log.exception("osc: decoding %s failed", address)
                self._on_refused(reply, Error(job="", code="internal", message=f"{type(exc).__name__}: {exc}"))
                continue
            self._handler(request, reply)

    def _refusal_reply(self, reply: OscReply, address: str, args: list[Any]) -> OscReply:
        """Where a request refused at decoding is answered: at the `reply_port` it names on its
        sender's host, as a decoded request's answers are (oscsend and Max's [udpsend] cannot hear
        on the port they send from), or at its source when it names no valid one."""
        port = osc.reply_port_hint(address, args)
        return reply if port is None else OscReply(self, (reply.host, port))

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        peer = writer.get_extra_info("peername")
        if not self.allows(peer[0]):
            self._connections.discard(task)
            writer.transport.abort()
            return
        if len(self._connections) > MAX_TCP_CONNECTIONS:
            log.warning("osc tcp: %d connections open; refusing %s:%d", MAX_TCP_CONNECTIONS, peer[0], peer[1])
            self._connections.discard(task)
            writer.transport.abort()
            return
        reply = OscReply(self, (peer[0], peer[1]), writer)
        deframer = osc.TcpDeframer()
        try:
            while data := await reader.read(65536):
                try:
                    packets = deframer.feed(data)
                except MessageTooLarge as exc:
                    # The stream cannot be re-synchronised after a bad length: say why and hang up.
                    self._on_refused(reply, Error(job="", code=exc.code, message=exc.message))
                    break
                for packet in packets:
                    self.handle_packet(packet, reply)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            # close() cancels open connections; ending quietly keeps asyncio's stream callback
            # from logging the cancellation as an error.
            pass
        finally:
            self._connections.discard(task)
            self._on_connection_closed(reply)
            writer.close()

    async def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        if self._tcp is not None:
            await self._tcp.wait_closed()

