"""`riffd render`: generate in this process, without a daemon, and write an audio file."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from clients.cli.common import audio_output_path, check_writable
from clients.cli.options import add_generation_options, generation_params
from daemon.config import ENGINE_HELP

DEFAULT_MODEL = "facebook/musicgen-small"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("render", help="generate in-process (no daemon) and write a file",
                                   description="Generate music in this process and write it to a WAV or FLAC file.")
    parser.add_argument("prompt", nargs="?", default=None, help="text prompt (omit for unconditional generation)")
    parser.add_argument("-o", "--output", required=True, type=audio_output_path, help="output file, .wav or .flac")
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help=f"hub id, local folder or preset such as debug/musicgen (default {DEFAULT_MODEL})")
    add_generation_options(parser)
    parser.add_argument("--audio-prompt", type=Path, help="continue this audio file (any rate, any channels)")
    parser.add_argument("--melody", type=Path, help="follow this audio's melody (melody checkpoints)")
    parser.add_argument("--sample-rate", type=int, help="output sample rate (default: the model's)")
    parser.add_argument("--bit-depth", default=None, help="16, 24, 32 or float (default: float for WAV, 24 for FLAC)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    parser.add_argument("--engine", default="auto", metavar="MODE", help=ENGINE_HELP)
    parser.add_argument("--cache-dir", type=Path, default=None, help="where presets are built (default ~/.cache/riffd)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # Imported here so that `riffd --help` and the client commands do not pay for torch.
    from daemon.audio.io import parse_subtype, read_audio, write_audio
    from daemon.models.registry import load_backend

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    _quiet_transformers(args.verbose)
    params = generation_params(args).validate()
    if args.prompt is not None and not args.prompt.strip():
        from protocol.errors import InvalidArgument
        raise InvalidArgument("the prompt is empty: describe the music, or omit it for unconditional generation")
    # Check everything cheap before loading the model, so mistakes fail fast.
    parse_subtype(args.bit_depth, "FLAC" if args.output.suffix.lower() == ".flac" else "WAV")
    check_writable(args.output)
    audio_prompt = read_audio(args.audio_prompt) if args.audio_prompt else None
    melody = read_audio(args.melody) if args.melody else None
    from daemon.models.musicgen.backend import MusicGen
    from protocol.errors import Unsupported

    model = load_backend(args.model, device=args.device, cache_dir=args.cache_dir, engine=args.engine)
    if not isinstance(model, MusicGen):
        raise Unsupported(f"riffd render takes MusicGen models; {args.model} is not one (serve it and use "
                          "`riffd jukebox`)")
    if melody is not None and not model.supports_melody:
        raise Unsupported(f"model {args.model} has no melody conditioning; use a melody checkpoint such as facebook/musicgen-melody")

    with _progress(enabled=not args.no_progress and sys.stderr.isatty()) as progress:
        render = model.render(args.prompt, params, audio_prompt=audio_prompt, melody=melody, progress=progress)
    path = write_audio(args.output, render.audio[0], render.sample_rate, target_sample_rate=args.sample_rate,
                       subtype=args.bit_depth)
    print(f"wrote {path} ({params.duration_s:g} s, seed {render.seed})", file=sys.stderr)
    return 0


class _progress:
    """A rich progress bar fed by the generator's (done, total) callback."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled

    def __enter__(self):
        if not self.enabled:
            return None
        from rich.progress import BarColumn, Progress, TimeRemainingColumn

        self._bar = Progress("[progress.description]{task.description}", BarColumn(), "{task.completed}/{task.total} steps",
                             TimeRemainingColumn(), transient=True)
        self._bar.__enter__()
        self._task = self._bar.add_task("generating", total=None)
        return lambda done, total: self._bar.update(self._task, completed=done, total=total)

    def __exit__(self, *exc) -> None:
        if self.enabled:
            self._bar.__exit__(*exc)


def _quiet_transformers(verbose: bool) -> None:
    if verbose:
        return
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
