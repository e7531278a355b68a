"""`riffd keys`: make CurveZMQ key pairs for a daemon that listens beyond loopback.

    riffd keys ~/.riffd/keys --name server     # the daemon's pair: --curve-secret-key server.key_secret
    riffd keys ~/.riffd/keys --name laptop     # a client's pair: copy laptop.key into --curve-clients-dir
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("keys", help="make a CurveZMQ key pair (daemon or client)",
                                   description="Write NAME.key (public: hand it out) and NAME.key_secret "
                                               "(private, mode 0600) into FOLDER.")
    parser.add_argument("folder", type=Path, help="where to write the key files")
    parser.add_argument("--name", default="riffd", help="file name stem (default riffd)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing pair of that name")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from daemon.server.access import create_key_pair
    from protocol.errors import RiffdError

    existing = [args.folder / f"{args.name}{suffix}" for suffix in (".key", ".key_secret")]
    if any(path.exists() for path in existing) and not args.force:
        raise RiffdError(f"{existing[0]} already exists (--force replaces it)", code="invalid_argument")
    public, secret = create_key_pair(args.folder, args.name)
    print(f"public key: {public}\nsecret key: {secret} (keep it private)")
    return 0
