"""`riffd continue in.wav --duration 8 -o out.wav`: continue an audio file on a running daemon."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from clients.cli.common import (DEFAULT_OUTPUT, absolute_path, add_job_arguments, check_writable, connect, job_options,
                                positive_seconds, run_job)
from protocol import wire
from protocol.audio_ref import INLINE_RATE_RANGE, MAX_INLINE_CHANNELS, InlineAudio
from protocol.errors import BadAudio, RiffdError


#: The most of a region sent by default: no MusicGen window continues from more (the daemon keeps the
#: last 29.98 s of a longer prompt), and a whole song's samples would not fit in a request.
DEFAULT_CONTEXT_S = 30.0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("continue", help="continue an audio file (daemon must be running)")
    parser.add_argument("audio", help="the audio file to continue (read here and sent with the request)")
    parser.add_argument("--prompt", "-p", help="text to steer the continuation")
    parser.add_argument("--send-path", action="store_true",
                        help="send the file's path for the daemon to read instead of its samples (same machine)")
    parser.add_argument("--context-s", type=positive_seconds, default=DEFAULT_CONTEXT_S, metavar="S",
                        help=f"send the region's last S seconds (default {DEFAULT_CONTEXT_S:g}: MusicGen continues "
                             "from at most the last 29.98 s of any prompt)")
    parser.add_argument("--bit-depth", default=None,
                        help="16, 24, 32 or float (default: the region's when the file type holds it, else "
                             "float for WAV and 24 for FLAC)")
    parser.add_argument("--include-prompt", action="store_true",
                        help="write the region (bit-identical) followed by the continuation, seam on the sample")
    add_job_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from daemon.audio.roundtrip import model_duration_s, read_region, round_trip_subtype

    # The output keeps the region's rate, channels and sample format (the model's rate is internal).
    region = read_region(args.audio)
    # A file that could not be written is refused now, not after the job: its format, then its folder.
    round_trip_subtype(args.output or DEFAULT_OUTPUT, region, include_prompt=args.include_prompt,
                       subtype=args.bit_depth)
    check_writable(args.output or Path.cwd() / DEFAULT_OUTPUT)
    if not args.send_path and not (region.channels <= MAX_INLINE_CHANNELS
                                   and INLINE_RATE_RANGE[0] <= region.sample_rate <= INLINE_RATE_RANGE[1]):
        raise BadAudio(f"{args.audio} is {region.channels} channels at {region.sample_rate} Hz; a request carries "
                       f"1-{MAX_INLINE_CHANNELS} channels at {INLINE_RATE_RANGE[0]}-{INLINE_RATE_RANGE[1]} Hz: mix "
                       "or resample it, or give --send-path to a daemon on this machine")
    source = absolute_path(args.audio) if args.send_path else _tail(region.audio.samples, region.sample_rate,
                                                                    args.context_s)

    def write(job: str, blocks: list, sample_rate: int, output: Path | None) -> int:
        import numpy as np

        from daemon.audio.roundtrip import write_round_trip
        from daemon.audio.types import Audio

        if not blocks:
            raise RiffdError("the job produced no audio", code="protocol")
        continuation = Audio(np.concatenate(blocks, axis=1), sample_rate)
        path = write_round_trip(output or Path(f"{job}.wav"), region, continuation, duration_s=args.duration,
                                include_prompt=args.include_prompt, subtype=args.bit_depth)
        import soundfile

        what = "region + continuation" if args.include_prompt else "continuation"
        written = soundfile.info(str(path))
        print(f"{path} ({what}, {written.samplerate} Hz, {written.channels} ch, {written.subtype}, job {job})")
        return 0

    with connect(args) as client:
        stream = client.continue_(source, duration_s=model_duration_s(args.duration), prompt=args.prompt,
                                  **job_options(args))
        return run_job(client, stream, args.output, write=write)


def _tail(samples, sample_rate: int, context_s: float) -> InlineAudio:
    """The region's last `context_s` seconds, as many of them as one request can carry."""
    channels, frames = samples.shape
    wanted = min(frames, round(context_s * sample_rate))
    fits = (wire.MAX_MESSAGE_BYTES - wire.MAX_HEADER_BYTES) // (channels * wire.PCM_DTYPE.itemsize)
    if wanted > fits:
        print(f"sending the region's last {fits / sample_rate:.2f} s: a request carries at most "
              f"{wire.MAX_MESSAGE_BYTES // 2**20} MiB of {channels}-channel float samples at {sample_rate} Hz "
              "(--send-path lets a daemon on this machine read the file itself)", file=sys.stderr)
        wanted = fits
    return InlineAudio(samples[:, frames - wanted:], sample_rate)
