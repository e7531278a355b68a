"""The way into a running jam: control requests posted from the event loop, read between two steps.

The loop thread posts (`post`, `stop`, listener notices) and never waits; the jam's thread drains
the inbox before each step, and sleeps on it (`wait`) while it is ahead of its listener, so a
change is picked up at once, not after the sleep.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from protocol.messages import Event, JamPrompts, JamSet, JamSnapshot

#: Sends one event to the peer that sent a control request (safe from any thread).
Answer = Callable[[Event], None]


@dataclass(frozen=True)
class ControlMessage:
    """A control request for the jam, and how to answer its sender."""

    request: JamSet | JamPrompts | JamSnapshot
    answer: Answer


class JamControl:
    """One running jam's inbox and the state of its listener."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._inbox: collections.deque[ControlMessage] = collections.deque()
        self._wake = threading.Event()
        self._stop_requested = False
        self._listener_gone_at: float | None = None

    def post(self, message: ControlMessage) -> None:
        self._inbox.append(message)
        self._wake.set()

    def stop(self) -> None:
        """Fade out and end (with `done`)."""
        self._stop_requested = True
        self._wake.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop_requested

    def drain(self) -> list[ControlMessage]:
        messages = []
        while self._inbox:
            messages.append(self._inbox.popleft())
        return messages

    def wait(self, timeout_s: float) -> None:
        """Sleep until a message comes or `timeout_s` passes."""
        if self._wake.wait(timeout_s):
            self._wake.clear()

    def listener_gone(self) -> bool:
        """The requester's connection is gone (its ZeroMQ peer, its OSC TCP connection); True the first time."""
        if self._listener_gone_at is not None:
            return False
        self._listener_gone_at = self._clock()
        self._wake.set()
        return True

    def listener_gone_for_s(self) -> float:
        """Seconds since the requester went away (0 while it is there)."""
        return 0.0 if self._listener_gone_at is None else self._clock() - self._listener_gone_at
