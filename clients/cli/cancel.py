"""`riffd cancel JOB`: cancel a queued or running job."""

from __future__ import annotations

import argparse

from clients.cli.common import add_connection_arguments, connect


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("cancel", help="cancel a queued or running job")
    parser.add_argument("job", help="the job id (printed by generate, listed by status)")
    add_connection_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    with connect(args) as client:
        client.cancel(args.job)
    print(f"cancelled {args.job}")
    return 0
