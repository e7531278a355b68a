"""`riffd continue in.wav --duration 8 -o out.wav`: continue an audio file on a running daemon."""

from __future__ import annotations

import argparse
from pathlib import Path

from clients.cli.common import add_job_arguments, connect, job_options, run_job
from protocol.audio_ref import InlineAudio
from protocol.errors import RiffdError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("continue", help="continue an audio file (daemon must be running)")
    parser.add_argument("audio", help="the audio file to continue (read here and sent with the request)")
    parser.add_argument("--prompt", "-p", help="text to steer the continuation")
    parser.add_argument("--send-path", action="store_true",
                        help="send the file's path for the daemon to read instead of its samples (same machine)")
    parser.add_argument("--include-prompt", action="store_true",
                        help="write the region (bit-identical) followed by the continuation, seam on the sample")
    add_job_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from daemon.audio.roundtrip import read_region

    # The output keeps the region's rate, channels and sample format (the model's rate is internal).
    region = read_region(args.audio)
    source = args.audio if args.send_path else InlineAudio(region.audio.samples, region.sample_rate)

    def write(job: str, blocks: list, sample_rate: int, output: Path | None) -> int:
        import numpy as np

        from daemon.audio.roundtrip import write_round_trip
        from daemon.audio.types import Audio

        if not blocks:
            raise RiffdError("the job produced no audio", code="protocol")
        continuation = Audio(np.concatenate(blocks, axis=1), sample_rate)
        path = write_round_trip(output or Path(f"{job}.wav"), region, continuation, duration_s=args.duration,
                                include_prompt=args.include_prompt)
        what = "region + continuation" if args.include_prompt else "continuation"
        print(f"{path} ({what}, {region.sample_rate} Hz, {region.channels} ch, {region.subtype}, job {job})")
        return 0

    with connect(args) as client:
        stream = client.continue_(source, duration_s=args.duration, prompt=args.prompt, **job_options(args))
        return run_job(client, stream, args.output, write=write)
