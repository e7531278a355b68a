"""`riffd serve`: run the daemon in the foreground (also `python -m daemon`)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    from daemon.config import add_arguments

    parser = subparsers.add_parser("serve", help="run the daemon: models resident; OSC, ZeroMQ and the web studio",
                                   description="Run the riffd daemon until SIGINT or SIGTERM.")
    add_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from daemon.entry import run as run_daemon

    return run_daemon(args)
