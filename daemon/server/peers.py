"""ZeroMQ peers: a cap on connections served at once and a request rate per peer (issue 18).

A ROUTER socket accepts every TCP connection itself; riffd learns of them from the socket
monitor (accepted / disconnected, by file descriptor) and of each message's connection from
its `SRCFD` property. The first `max_peers` connections are served; later ones are answered
`too_many_peers` until a served one hangs up, and then the oldest waiting one moves up.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from daemon.server.access import RateLimiter
from protocol.errors import RateLimited, RiffdError, TooManyPeers

log = logging.getLogger(__name__)


class PeerGate:
    """Which ZeroMQ connections are served, and whether one more request from a peer is read."""

    def __init__(self, max_peers: int, rate_per_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_peers = max_peers
        self._rate = RateLimiter(rate_per_s, clock=clock)
        self._rate_per_s = rate_per_s
        # Connections by file descriptor, oldest first (dicts keep insertion order).
        self._served: dict[int, None] = {}
        self._waiting: dict[int, None] = {}
        self.refused_over_cap = 0
        self.refused_over_rate = 0

    @property
    def served(self) -> int:
        return len(self._served)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def connected(self, fd: int) -> None:
        if fd in self._served or fd in self._waiting:
            return
        if len(self._served) < self.max_peers:
            self._served[fd] = None
        else:
            self._waiting[fd] = None
            log.warning("zmq: %d peers connected (--zmq-max-peers %d); a new one waits for a free slot",
                        len(self._served) + len(self._waiting), self.max_peers)

    def disconnected(self, fd: int) -> None:
        self._waiting.pop(fd, None)
        if fd in self._served:
            del self._served[fd]
            while self._waiting and len(self._served) < self.max_peers:
                promoted = next(iter(self._waiting))
                del self._waiting[promoted]
                self._served[promoted] = None

    def check(self, fd: int | None, peer: bytes) -> RiffdError | None:
        """None if a request from connection `fd` (routing id `peer`) is to be read, else why not."""
        if fd is not None:
            # A message may arrive before the monitor's note of its connection: count it now.
            self.connected(fd)
            if fd in self._waiting:
                self.refused_over_cap += 1
                return TooManyPeers(f"the daemon serves {self.max_peers} ZeroMQ connections at once "
                                    "(--zmq-max-peers); try again when one closes")
        if not self._rate.allows(peer.hex()):
            self.refused_over_rate += 1
            if self.refused_over_rate in (1, 100) or self.refused_over_rate % 10000 == 0:
                log.warning("zmq: peer %s is over --zmq-rate-limit; %d requests refused so far", peer.hex(),
                            self.refused_over_rate)
            return RateLimited(f"more than {self._rate_per_s:g} requests a second from this peer (--zmq-rate-limit);"
                               " this one was not read")
        return None
