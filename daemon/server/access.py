"""Who may talk to the daemon: CurveZMQ keys on ZeroMQ, an address allow-list on OSC.

ZeroMQ: with CurveZMQ on, every connection is encrypted and a ZAP handler (pyzmq's
`zmq.auth`) admits only clients whose public key file is in the allowed folder; a client
without one never completes its handshake, so its requests never reach us. OSC has no
authentication of its own: packets from addresses outside the allow-list are dropped unread
(no reply either, so the daemon cannot be used to reflect traffic at a third party).
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
import zmq.auth.asyncio

from protocol.errors import InvalidArgument

log = logging.getLogger(__name__)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class CurveServerKeys:
    """The daemon's CurveZMQ key pair and the folder of allowed clients' public keys."""

    public_key: bytes
    secret_key: bytes
    clients_dir: Path

    @classmethod
    def load(cls, secret_key_file: Path, clients_dir: Path) -> "CurveServerKeys":
        try:
            public, secret = zmq.auth.load_certificate(secret_key_file)
        except (OSError, ValueError) as exc:
            raise InvalidArgument(f"cannot read CurveZMQ secret key {secret_key_file}: {exc}") from None
        if not secret:
            raise InvalidArgument(f"{secret_key_file} holds no secret key (give the .key_secret file)")
        if not clients_dir.is_dir():
            raise InvalidArgument(f"CurveZMQ clients folder {clients_dir} does not exist")
        if not any(clients_dir.glob("*.key")):
            log.warning("no client keys in %s: every ZeroMQ client will be refused", clients_dir)
        return cls(public, secret, clients_dir)


class CurveGuard:
    """A running ZAP authenticator for one context, and the socket options of a Curve server."""

    def __init__(self, context: zmq.Context, keys: CurveServerKeys) -> None:
        self._keys = keys
        self._auth = zmq.auth.asyncio.AsyncioAuthenticator(context)
        self._auth.start()
        # Any source address; only the key decides (the allow-list is the folder's public keys).
        self._auth.configure_curve(domain="*", location=str(keys.clients_dir))
        log.info("ZeroMQ: CurveZMQ on, %d allowed client key(s) in %s",
                 len(list(keys.clients_dir.glob("*.key"))), keys.clients_dir)

    def secure(self, socket: zmq.Socket) -> None:
        """Make `socket` a Curve server (call before bind)."""
        socket.curve_secretkey = self._keys.secret_key
        socket.curve_publickey = self._keys.public_key
        socket.curve_server = True

    def stop(self) -> None:
        self._auth.stop()


def create_key_pair(folder: Path, name: str) -> tuple[Path, Path]:
    """Write NAME.key (public, to hand out) and NAME.key_secret (private, mode 0600) in `folder`."""
    if not name or "/" in name or name.startswith("."):
        raise InvalidArgument(f"key name {name!r} must be a plain file name")
    folder.mkdir(parents=True, exist_ok=True)
    public, secret = (Path(path) for path in zmq.auth.create_certificates(folder, name))
    secret.chmod(0o600)
    return public, secret


class SourceFilter:
    """Whether an OSC packet's source address is on the allow-list."""

    def __init__(self, networks: Iterable[str]) -> None:
        self._networks: tuple[IPNetwork, ...] = tuple(ipaddress.ip_network(n, strict=False) for n in networks)

    def allows(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # a dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d
        return any(address.version == network.version and address in network for network in self._networks)


class RateLimiter:
    """A token bucket per source host: at most `rate_per_s` packets a second, `burst` at once.

    By host, not (host, port): a flood from one machine may come from many ports. The table is
    bounded; when it is full the stalest hosts are forgotten (they start with a full bucket).
    """

    MAX_HOSTS = 4096

    def __init__(self, rate_per_s: float, burst: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._rate_per_s = rate_per_s
        self._burst = burst if burst is not None else max(rate_per_s, 1.0)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # host -> (tokens, last refill time)

    def allows(self, host: str) -> bool:
        if self._rate_per_s <= 0:
            return True
        now = self._clock()
        tokens, last = self._buckets.pop(host, (self._burst, now))
        tokens = min(self._burst, tokens + (now - last) * self._rate_per_s)
        allowed = tokens >= 1.0
        self._buckets[host] = (tokens - 1.0 if allowed else tokens, now)  # re-inserted: most recent last
        if len(self._buckets) > self.MAX_HOSTS:
            for stale in list(self._buckets)[: self.MAX_HOSTS // 4]:
                del self._buckets[stale]
        return allowed


__all__ = ["CurveGuard", "CurveServerKeys", "RateLimiter", "SourceFilter", "create_key_pair"]
