"""`riffd continue in.wav --duration 8 -o out.wav`: continue an audio file on a running daemon."""

from __future__ import annotations

import argparse

from clients.cli.common import add_job_arguments, job_options, run_job
from clients.client import Client


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("continue", help="continue an audio file (daemon must be running)")
    parser.add_argument("audio", help="the audio to continue (a file the daemon can read)")
    parser.add_argument("--prompt", "-p", help="text to steer the continuation")
    add_job_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    with Client(args.endpoint, timeout_s=args.timeout) as client:
        stream = client.continue_(args.audio, duration_s=args.duration, prompt=args.prompt, **job_options(args))
        return run_job(client, stream, args.output)
