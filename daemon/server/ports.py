"""The daemon's listening ports, tried before the slow part of start-up.

Models take seconds to load: a port another program holds should fail the start at once, as one
line naming the flag that moves it, not after the load with a traceback. Each port is bound and
closed again as its endpoint will bind it; the endpoints' own binds stay the real test (a port
can be taken in between), and their failures read the same (`cannot_listen`).
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass

from daemon.config import DaemonConfig
from protocol.errors import InvalidArgument


@dataclass(frozen=True)
class Listener:
    """One socket an endpoint listens on."""

    name: str  # what a person reads: "OSC (UDP)"
    flag: str  # the flag that moves it
    port: int  # 0: any free port (nothing to try)
    kind: socket.SocketKind  # SOCK_STREAM or SOCK_DGRAM


def listeners(config: DaemonConfig) -> tuple[Listener, ...]:
    """The sockets start-up cannot go on without. Not the web studio's: it is optional, and a taken
    port leaves the daemon serving without it (logged)."""
    return (Listener("OSC (UDP)", "--osc-port", config.osc_port, socket.SOCK_DGRAM),
            Listener("OSC (TCP)", "--osc-port", config.osc_port, socket.SOCK_STREAM),
            Listener("ZeroMQ requests", "--zmq-port", config.zmq_port, socket.SOCK_STREAM),
            Listener("ZeroMQ events", "--pub-port", config.resolved_pub_port, socket.SOCK_STREAM))


def check_ports(host: str, wanted: Iterable[Listener]) -> None:
    """Raise InvalidArgument for the first of `wanted` that cannot listen on `host` now."""
    for listener in wanted:
        if listener.port:
            try:
                _bind_and_close(host, listener)
            except OSError as exc:
                raise cannot_listen(listener.name, f"{host}:{listener.port}", listener.flag, exc.errno,
                                    exc.strerror or str(exc)) from None


def cannot_listen(name: str, where: str, flag: str, code: int | None, detail: str) -> InvalidArgument:
    """The error for an endpoint that cannot listen at `where`: `code` is the errno (the system's words
    for it are used, asyncio's repeat the address), `detail` what was said where there is none."""
    reason = os.strerror(code) if code is not None and code > 0 else detail  # a resolver's codes are < 0
    if code == errno.EADDRINUSE:
        advice = f"another program (another riffd?) holds it: choose another port with {flag}"
    else:
        advice = f"check --host and {flag}"
    return InvalidArgument(f"cannot listen for {name} on {where}: {reason}; {advice}")


def _bind_and_close(host: str, listener: Listener) -> None:
    """Bind a socket as the endpoint will (its first address for `host`), then let it go."""
    family, kind, proto, _, address = socket.getaddrinfo(host, listener.port, type=listener.kind,
                                                         flags=socket.AI_PASSIVE)[0]
    with socket.socket(family, kind, proto) as probe:
        if kind == socket.SOCK_STREAM:
            # SO_REUSEADDR as asyncio's servers and libzmq set it (a port that a stopped daemon left
            # in TIME_WAIT is free to them); IPV6_V6ONLY as asyncio's servers set it.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        probe.bind(address)
