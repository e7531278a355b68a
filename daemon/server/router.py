"""Event routing on the event loop: each event to its requester, the PUB monitor and OSC subscribers."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Hashable
from typing import Protocol

from daemon.server.access import RateLimiter
from protocol.errors import InvalidArgument
from protocol.messages import Error, Event

log = logging.getLogger(__name__)

#: More OSC subscribers than this is refused (each costs a send per event).
MAX_SUBSCRIBERS = 64
#: Refusals relayed beyond their sender (to OSC subscribers on its host and the PUB monitor), per
#: sending host: a second's worth, and a burst of RELAY_BURST. The sender itself always gets its
#: answer (one per request: nothing amplified); past the limit the copies are dropped and counted.
RELAY_ERRORS_PER_S = 10.0
RELAY_BURST = 20.0


class Reply(Protocol):
    """A way back to one peer. `key` identifies the peer (for de-duplication and clean-up)."""

    @property
    def transport(self) -> str:
        """"zmq" or "osc"."""
        ...

    @property
    def key(self) -> Hashable: ...

    @property
    def host(self) -> str | None:
        """The peer's IP address (None where the transport does not say)."""
        ...

    def send(self, event: Event) -> None: ...


class Monitor(Protocol):
    def publish(self, event: Event) -> None: ...


class EventRouter:
    """Delivers events; all methods run on the event loop thread."""

    def __init__(self) -> None:
        self._monitors: list[Monitor] = []
        self._subscribers: dict[Hashable, Reply] = {}
        self._relay_limiter = RateLimiter(RELAY_ERRORS_PER_S, burst=RELAY_BURST)
        self.relays_dropped = 0
        # Called after every change of the subscribers (the daemon keeps them across restarts).
        self.on_subscribers_changed: Callable[[], None] | None = None

    def add_monitor(self, monitor: Monitor) -> None:
        self._monitors.append(monitor)

    def subscribe(self, reply: Reply) -> None:
        if reply.key not in self._subscribers and len(self._subscribers) >= MAX_SUBSCRIBERS:
            raise InvalidArgument(f"too many subscribers (at most {MAX_SUBSCRIBERS})")
        self._subscribers[reply.key] = reply
        log.info("subscribed %s", reply.key)
        if self.on_subscribers_changed is not None:
            self.on_subscribers_changed()

    def unsubscribe(self, key: Hashable) -> bool:
        found = self._subscribers.pop(key, None) is not None
        if found:
            log.info("unsubscribed %s", key)
            if self.on_subscribers_changed is not None:
                self.on_subscribers_changed()
        return found

    def subscriber_keys(self) -> list[Hashable]:
        return list(self._subscribers)

    def has_osc_subscribers(self) -> bool:
        return any(reply.transport == "osc" for reply in self._subscribers.values())

    def reply(self, reply: Reply | None, event: Event) -> None:
        """An answer to one request: to its sender and the monitors."""
        if reply is not None:
            reply.send(event)
        for monitor in self._monitors:
            monitor.publish(event)

    def refuse(self, reply: Reply | None, error: Error) -> None:
        """A request refused before it became a job: the answer to its sender, and (rate-limited per
        sending host) the same to OSC subscribers on that host and to the monitors.

        Senders such as oscsend or Max's [udpsend] cannot listen on the port they sent from; a
        listener the performer subscribed on the same machine hears the refusal instead.
        """
        if reply is not None:
            reply.send(error)
        host = _same_host_key(reply.host) if reply is not None else None
        if not self._relay_limiter.allows(host or "?"):
            self.relays_dropped += 1
            if self.relays_dropped in (1, 100) or self.relays_dropped % 10000 == 0:
                log.warning("refusals from %s come faster than %g/s: %d not relayed to subscribers and monitors",
                            host, RELAY_ERRORS_PER_S, self.relays_dropped)
            return
        for monitor in self._monitors:
            monitor.publish(error)
        if host is None or reply is None:
            return
        for key, subscriber in list(self._subscribers.items()):
            if subscriber.transport == "osc" and key != reply.key and _same_host_key(subscriber.host) == host:
                subscriber.send(error)

    def answer_once(self, reply: Reply, requester: Reply | None, event: Event) -> None:
        """`event` to `reply`, unless a job's broadcast reaches it already (it is the job's requester or a
        subscriber); an error is the request's refusal (its sender, same-host subscribers, monitors)."""
        if isinstance(event, Error):
            self.refuse(reply, event)
            return
        covered = (requester is not None and reply.key == requester.key) or reply.key in self._subscribers
        if not covered:
            reply.send(event)

    def broadcast(self, reply: Reply | None, event: Event) -> None:
        """A job's event: to its requester, the monitors and every subscriber (each peer once)."""
        self.reply(reply, event)
        for key, subscriber in list(self._subscribers.items()):
            if reply is None or key != reply.key:
                subscriber.send(event)


def _same_host_key(host: str | None) -> str | None:
    """One name per machine: every loopback address is this machine, IPv4-mapped IPv6 is IPv4."""
    if not host:
        return None
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return "loopback" if address.is_loopback else str(address)
