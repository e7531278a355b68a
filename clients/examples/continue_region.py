"""Continue a DAW region from the command line: several bar-aligned takes to audition.

    # bounce the region (any rate, mono or stereo, 16/24/32-bit), then:
    python -m clients.examples.continue_region verse.wav --bpm 120 --bars 4 --takes 3 \\
        --prompt "same groove, add a rising synth lead" --include-prompt

Each take is `bars` bars long at `bpm` (so it lands on the grid when dropped at the region's
end), continues the last `--context-s` seconds of the region (the model's window is short),
and is written at the region's rate, width and sample format: `verse-take1.wav` ... With
`--include-prompt` a take is the region itself, bit for bit, followed by the continuation.
All takes are queued at once; the daemon renders them one after another while this waits.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from clients.cli.common import add_connection_arguments, connect, exit_status
from daemon.audio.roundtrip import model_duration_s, read_region, write_round_trip
from daemon.audio.types import Audio
from protocol.audio_ref import InlineAudio
from protocol.errors import RiffdError


def take_duration_s(bpm: float, bars: float, beats_per_bar: int) -> float:
    """Seconds of `bars` bars of `beats_per_bar` beats at `bpm`."""
    if bpm <= 0 or bars <= 0 or beats_per_bar <= 0:
        raise ValueError("bpm, bars and beats per bar must be positive")
    return bars * beats_per_bar * 60.0 / bpm


def run(args: argparse.Namespace) -> int:
    region = read_region(args.region)
    duration_s = take_duration_s(args.bpm, args.bars, args.beats_per_bar)
    context_frames = min(region.frames, round(args.context_s * region.sample_rate))
    context = InlineAudio(region.audio.samples[:, -context_frames:], region.sample_rate)
    out_dir = args.out_dir or args.region.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = args.region.stem
    print(f"{args.region}: {region.frames / region.sample_rate:.2f} s at {region.sample_rate} Hz, "
          f"{region.channels} ch; {args.takes} takes of {args.bars:g} bars ({duration_s:.3f} s)", flush=True)
    with connect(args) as client:
        # Queue every take first: the daemon works through them while we read the first.
        streams = [client.continue_(context, duration_s=model_duration_s(duration_s), prompt=args.prompt, model=args.model,
                                    seed=args.seed + take, priority=args.priority)
                   for take in range(args.takes)]
        for take, stream in enumerate(streams, start=1):
            try:
                rendered = stream.collect()
            except RiffdError as exc:
                print(f"take {take}: failed: {exc.message} [{exc.code}]", file=sys.stderr)
                return 2
            path = write_round_trip(out_dir / f"{stem}-take{take}.wav", region,
                                    Audio(rendered.audio, rendered.sample_rate), duration_s=duration_s,
                                    include_prompt=args.include_prompt)
            print(f"take {take}: {path} (seed {args.seed + take - 1}, job {rendered.job})", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clients.examples.continue_region",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("region", type=Path, help="the bounced region (.wav or .flac)")
    parser.add_argument("--bpm", type=float, required=True, help="the session's tempo")
    parser.add_argument("--bars", type=float, default=4, help="length of each take in bars (default 4)")
    parser.add_argument("--beats-per-bar", type=int, default=4, help="time signature numerator (default 4)")
    parser.add_argument("--takes", type=int, default=3, help="how many variations (default 3)")
    parser.add_argument("--prompt", "-p", help="text to steer the continuation")
    parser.add_argument("--seed", type=int, default=1, help="seed of the first take; the next ones count up")
    parser.add_argument("--context-s", type=float, default=10.0,
                        help="seconds at the end of the region the model hears (default 10)")
    parser.add_argument("--include-prompt", action="store_true", help="write the region followed by each take")
    parser.add_argument("--out-dir", type=Path, help="where the takes go (default: next to the region)")
    parser.add_argument("--model", "-m", help="model id (default: the daemon's)")
    parser.add_argument("--priority", type=int, default=0, help="queue priority (live pads use 100)")
    add_connection_arguments(parser)  # --endpoint, --timeout, CurveZMQ keys for a remote daemon
    args = parser.parse_args(argv)
    if args.takes < 1:
        parser.error("--takes must be at least 1")
    return exit_status(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
