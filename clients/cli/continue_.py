"""`riffd continue in.wav --duration 8 -o out.wav`: continue an audio file on a running daemon."""

from __future__ import annotations

import argparse

from clients.cli.common import add_job_arguments, job_options, run_job
from clients.client import Client
from protocol.audio_ref import InlineAudio


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("continue", help="continue an audio file (daemon must be running)")
    parser.add_argument("audio", help="the audio file to continue (read here and sent with the request)")
    parser.add_argument("--prompt", "-p", help="text to steer the continuation")
    parser.add_argument("--send-path", action="store_true",
                        help="send the file's path for the daemon to read instead of its samples (same machine)")
    add_job_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.send_path:
        source = args.audio
    else:
        from daemon.audio.io import read_audio

        region = read_audio(args.audio)
        source = InlineAudio(region.samples, region.sample_rate)
    with Client(args.endpoint, timeout_s=args.timeout) as client:
        stream = client.continue_(source, duration_s=args.duration, prompt=args.prompt, **job_options(args))
        return run_job(client, stream, args.output)
