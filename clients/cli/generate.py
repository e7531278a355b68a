"""`riffd generate "PROMPT" --duration 8 -o out.wav`: a generation on a running daemon."""

from __future__ import annotations

import argparse
from pathlib import Path

from clients.cli.common import (DEFAULT_OUTPUT, absolute_path, add_job_arguments, check_writable, connect, job_options,
                                run_job)
from clients.cli.tempo_options import add_tempo_arguments, tempo_options


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("generate", help="generate music from a text prompt (daemon must be running)")
    parser.add_argument("prompt", help="what the music should be")
    parser.add_argument("--melody", help="audio file whose melody to follow (melody models)")
    parser.add_argument("--audio-prompt", help="audio file to continue from")
    add_job_arguments(parser)
    add_tempo_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    check_writable(args.output or Path.cwd() / DEFAULT_OUTPUT)
    options = job_options(args) | tempo_options(args)
    for name in ("melody", "audio_prompt"):
        if getattr(args, name):
            options[name] = absolute_path(getattr(args, name))
    with connect(args) as client:
        return run_job(client, client.generate(args.prompt, duration_s=args.duration, **options), args.output)
