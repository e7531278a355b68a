"""`--bars`, `--bpm`, `--launch`... : the tempo fields of a request (issue 15) as flags."""

from __future__ import annotations

import argparse

from protocol.errors import InvalidArgument
from protocol.tempo import LAUNCH_MODES


def add_tempo_arguments(parser: argparse.ArgumentParser, *, take: bool = True) -> None:
    """The flags; a jam (`take` False) has no --bars or --loop (it runs until stopped)."""
    group = parser.add_argument_group("in time (Ableton Link with `riffd serve --link`, else the daemon's own tempo)")
    if take:
        group.add_argument("--bars", type=int, help="length in bars instead of --duration (at the tempo in force)")
    group.add_argument("--quantum", type=int, help="beats per bar (default 4)")
    group.add_argument("--bpm", type=float, help="the tempo (a daemon without Link keeps it; with Link the session's rules)")
    group.add_argument("--launch", choices=LAUNCH_MODES, help="start playback now, on the next beat or the next bar")
    if take:
        group.add_argument("--loop", action="store_const", const=True, help="exactly --bars bars, looping seamlessly")
    group.add_argument("--no-conform", dest="conform", action="store_const", const=False,
                       help="leave the generated audio at its own tempo (default: stretched onto the grid)")


def tempo_options(args: argparse.Namespace) -> dict:
    """The tempo fields given on the command line; with --bars the duration sent is 0."""
    options = {name: getattr(args, name) for name in ("bars", "quantum", "bpm", "launch", "loop", "conform")
               if getattr(args, name, None) is not None}
    if options.get("bars") is not None:
        if getattr(args, "duration_given", False):
            # As the daemon refuses both; dropping one quietly would make a take of a length not asked for.
            raise InvalidArgument("give --bars or --duration, not both")
        args.duration = 0.0
    return options
