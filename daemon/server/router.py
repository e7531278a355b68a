"""Event routing on the event loop: each event to its requester, the PUB monitor and OSC subscribers."""

from __future__ import annotations

import logging
from collections.abc import Hashable
from typing import Protocol

from protocol.errors import InvalidArgument
from protocol.messages import Error, Event

log = logging.getLogger(__name__)

#: More OSC subscribers than this is refused (each costs a send per event).
MAX_SUBSCRIBERS = 64


class Reply(Protocol):
    """A way back to one peer. `key` identifies the peer (for de-duplication and clean-up)."""

    @property
    def transport(self) -> str:
        """"zmq" or "osc"."""
        ...

    @property
    def key(self) -> Hashable: ...

    def send(self, event: Event) -> None: ...


class Monitor(Protocol):
    def publish(self, event: Event) -> None: ...


class EventRouter:
    """Delivers events; all methods run on the event loop thread."""

    def __init__(self) -> None:
        self._monitors: list[Monitor] = []
        self._subscribers: dict[Hashable, Reply] = {}

    def add_monitor(self, monitor: Monitor) -> None:
        self._monitors.append(monitor)

    def subscribe(self, reply: Reply) -> None:
        if reply.key not in self._subscribers and len(self._subscribers) >= MAX_SUBSCRIBERS:
            raise InvalidArgument(f"too many subscribers (at most {MAX_SUBSCRIBERS})")
        self._subscribers[reply.key] = reply
        log.info("subscribed %s", reply.key)

    def unsubscribe(self, key: Hashable) -> bool:
        found = self._subscribers.pop(key, None) is not None
        if found:
            log.info("unsubscribed %s", key)
        return found

    def has_osc_subscribers(self) -> bool:
        return any(reply.transport == "osc" for reply in self._subscribers.values())

    def reply(self, reply: Reply | None, event: Event) -> None:
        """An answer to one request: to its sender and the monitors."""
        if reply is not None:
            reply.send(event)
        for monitor in self._monitors:
            monitor.publish(event)

    def answer_once(self, reply: Reply, requester: Reply | None, event: Event) -> None:
        """`event` to `reply`, unless a job's broadcast reaches it already (it is the job's requester or a
        subscriber), or it is an error (those only ever go to the request's sender)."""
        covered = (requester is not None and reply.key == requester.key) or reply.key in self._subscribers
        if isinstance(event, Error) or not covered:
            reply.send(event)

    def broadcast(self, reply: Reply | None, event: Event) -> None:
        """A job's event: to its requester, the monitors and every subscriber (each peer once)."""
        self.reply(reply, event)
        for key, subscriber in list(self._subscribers.items()):
            if reply is None or key != reply.key:
                subscriber.send(event)
