"""CurveZMQ on the client side: the keys a client needs to reach a daemon that requires them.

A daemon listening beyond loopback requires CurveZMQ: the client proves itself with its own
key pair (its public key must be in the daemon's clients folder) and checks the daemon with
the daemon's public key. All three files are made by `riffd keys`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth

from protocol.errors import InvalidArgument


@dataclass(frozen=True)
class CurveClientKeys:
    """This client's key pair and the daemon's public key."""

    public_key: bytes
    secret_key: bytes
    server_key: bytes

    @classmethod
    def load(cls, secret_key_file: str | Path, server_key_file: str | Path) -> "CurveClientKeys":
        try:
            public, secret = zmq.auth.load_certificate(secret_key_file)
            server, _ = zmq.auth.load_certificate(server_key_file)
        except (OSError, ValueError) as exc:
            raise InvalidArgument(f"cannot read CurveZMQ keys: {exc}") from None
        if not secret:
            raise InvalidArgument(f"{secret_key_file} holds no secret key (give the .key_secret file)")
        return cls(public, secret, server)

    def apply(self, socket: zmq.Socket) -> None:
        """Make `socket` a Curve client of the daemon (call before connect)."""
        socket.curve_secretkey = self.secret_key
        socket.curve_publickey = self.public_key
        socket.curve_serverkey = self.server_key


__all__ = ["CurveClientKeys"]
