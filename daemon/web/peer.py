"""One browser tab's WebSocket: its way back for events (a transport's Reply) and a bounded outbox.

Events are produced on the loop by synchronous code (the router), while a WebSocket write is a
coroutine that waits for the socket to drain; an outbox drained by one writer task joins the
two and keeps each tab's events in order. A tab that stops reading is dropped once its outbox
is full (its jobs run on and their takes stay in the history), like a ZeroMQ peer past its HWM.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from daemon.web import frames
from protocol import wire
from protocol.messages import Event

log = logging.getLogger(__name__)

#: Messages waiting for one tab before it counts as gone (chunks are a second or so of audio each).
MAX_OUTBOX = 2000


class WebPeer:
    """A connected tab: the jobs it asked for and the messages on their way to it."""

    def __init__(self, socket: web.WebSocketResponse, peer_id: int, *, host: str | None = None) -> None:
        self.id = peer_id
        self.socket = socket
        self.host = host  # the tab's IP address (refusals also go to OSC listeners on its machine)
        # Jobs this tab asked for: it gets their own events (chunks included), not board copies.
        self.jobs: set[str] = set()
        self._outbox: deque[str | bytes] = deque()
        self._wake = asyncio.Event()
        self.closed = False

    def push(self, message: str | bytes) -> None:
        if self.closed:
            return
        if len(self._outbox) >= MAX_OUTBOX:
            log.warning("web: tab %d is not reading; dropping it", self.id)
            self.close()
            return
        self._outbox.append(message)
        self._wake.set()

    def push_event(self, event: Event) -> None:
        """An event as protocol.wire encodes it: text when it is a header alone, else packed frames."""
        encoded = wire.encode(event)
        self.push(encoded[0].decode() if len(encoded) == 1 else frames.pack(encoded))

    async def write_loop(self) -> None:
        """Send the outbox in order until the tab goes; runs as the tab's one writer task."""
        try:
            while not self.closed:
                await self._wake.wait()
                self._wake.clear()
                while self._outbox and not self.closed:
                    message = self._outbox.popleft()
                    if isinstance(message, str):
                        await self.socket.send_str(message)
                    else:
                        await self.socket.send_bytes(message)
        except (ConnectionError, RuntimeError) as exc:
            log.debug("web: tab %d went away while writing: %s", self.id, exc)
            self.closed = True
        finally:
            self._outbox.clear()

    def close(self) -> None:
        self.closed = True
        self._outbox.clear()
        self._wake.set()
        if not self.socket.closed:
            asyncio.get_running_loop().create_task(self.socket.close(code=1008, message=b"not reading"))


@dataclass(frozen=True)
class WebReply:
    """The router's way back to one tab (a transport's Reply)."""

    peer: WebPeer
    deliver: Callable[[WebPeer, Event], None]
    transport: str = "web"

    @property
    def key(self) -> tuple[str, int]:
        return ("web", self.peer.id)

    @property
    def host(self) -> str | None:
        return self.peer.host

    def send(self, event: Event) -> None:
        self.deliver(self.peer, event)


__all__ = ["MAX_OUTBOX", "WebPeer", "WebReply"]
