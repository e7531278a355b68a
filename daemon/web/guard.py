"""Who may use the web studio: Host and Origin checks on every request, a token for anything that acts.

A page on localhost is reachable by every website its user visits. A cross-site page can send
requests (its Origin header is then foreign), and DNS rebinding can point a name the attacker
controls at 127.0.0.1 (the Host header then carries that name). So every HTTP request and
WebSocket handshake must name this daemon in Host (an address literal or `localhost`, at the
port the studio listens on), a browser's Origin must be the studio's own, and whatever acts
(the WebSocket, the take downloads) needs the per-daemon token that `riffd serve` prints, as
Jupyter does.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

#: Names that always mean this machine.
LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "localhost.localdomain"})


def new_token() -> str:
    """A fresh per-daemon token: 192 random bits, URL-safe."""
    return secrets.token_urlsafe(24)


@dataclass
class WebGuard:
    """The studio's checks; `port` is set once the listening socket is bound."""

    token: str
    port: int = 0
    # Listening beyond loopback (--allow-remote): address literals of any interface are fine
    # (an IP cannot be rebound), and so is this machine's own name.
    remote: bool = False
    extra_names: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def for_daemon(cls, *, token: str | None = None, remote: bool = False,
                   names: Iterable[str] = ()) -> "WebGuard":
        own = {name.lower() for name in names}
        if remote:
            hostname = socket.gethostname().lower()
            own |= {hostname, f"{hostname}.local"}
        return cls(token=token or new_token(), remote=remote, extra_names=frozenset(own))

    def host_allowed(self, host: str | None) -> bool:
        """Whether a Host header names this studio: a loopback name or address (any address
        when remote) and the port it listens on."""
        if not host:
            return False
        name, port = split_host(host)
        if port != self.port or not name:
            return False
        name = name.lower()
        if name in LOOPBACK_NAMES:
            return True
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            return self.remote and name in self.extra_names
        return address.is_loopback or self.remote

    def origin_allowed(self, origin: str | None, host: str | None) -> bool:
        """A browser's Origin must be the studio itself (absent: not a browser's cross-site request).

        Browsers send Origin on every WebSocket handshake, every POST and every module script;
        a page on another site cannot choose it.
        """
        if origin is None:
            return True
        if origin == "null" or host is None:
            return False  # sandboxed frames, file:// pages, redirects across sites
        parts = urlsplit(origin)
        if parts.scheme != "http" or parts.path not in ("", "/") or parts.query or parts.username:
            return False
        return parts.netloc.lower() == host.lower() and self.host_allowed(parts.netloc)

    def token_ok(self, given: str | None) -> bool:
        """Constant-time comparison, so the token cannot be guessed a character at a time."""
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())


def split_host(host: str) -> tuple[str, int | None]:
    """`name:port` / `[v6]:port` -> (name, port); the port is None when absent or not a number."""
    if host.startswith("["):
        end = host.find("]")
        if end < 0:
            return "", None
        name, rest = host[1:end], host[end + 1:]
        if not rest:
            return name, None
        if not rest.startswith(":"):
            return "", None
        port_text = rest[1:]
    elif host.count(":") == 1:
        name, port_text = host.split(":")
    elif ":" in host:
        return "", None  # a bare IPv6 address must be bracketed in a Host header
    else:
        return host, None
    return name, int(port_text) if port_text.isdigit() and len(port_text) <= 5 else None


__all__ = ["WebGuard", "new_token", "split_host"]
