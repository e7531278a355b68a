"""A set list: several prompts rendered in order, each section optionally continuing the last.

    python -m clients.examples.setlist set.toml --out set/ --join

    # set.toml
    model = "facebook/musicgen-small"   # optional: the daemon's default otherwise
    context_s = 6                        # how much of the previous section a continuing one hears

    [[section]]
    name = "intro"
    prompt = "ambient pads, slow build, 120 bpm"
    duration_s = 8
    seed = 1

    [[section]]
    name = "groove"
    prompt = "driving house groove, 120 bpm"
    duration_s = 16
    continue = true                      # picks up exactly where "intro" ended

Sections are written as 01-intro.wav, 02-groove.wav ...; `--join` also writes set.wav, the
sections back to back (continuing sections join without a seam). `--play` plays each
section on the daemon's sound card as it is generated (`riffd serve` with a sound card).
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from clients.cli.common import add_connection_arguments, connect, exit_status
from daemon.audio.io import write_audio
from daemon.config_file import read_toml
from protocol.audio_ref import InlineAudio
from protocol.errors import InvalidArgument


@dataclass(frozen=True)
class Section:
    name: str
    prompt: str
    duration_s: float
    seed: int | None = None
    # Continue from the end of the previous section (its last `context_s` seconds are the prompt).
    continue_: bool = False
    temperature: float | None = None


@dataclass(frozen=True)
class SetList:
    sections: tuple[Section, ...]
    model: str | None = None
    context_s: float = 6.0


def read_setlist(path: Path) -> SetList:
    """Parse and check a set list file; InvalidArgument names the first problem."""
    data = read_toml(path, str(path))
    unknown = sorted(set(data) - {"model", "context_s", "section"})
    if unknown:
        raise InvalidArgument(f"{path}: unknown setting {unknown[0]!r} (known: model, context_s, [[section]])")
    known = {f.name.rstrip("_") for f in fields(Section)}
    sections: list[Section] = []
    for number, table in enumerate(data.get("section", []), start=1):
        extra = sorted(set(table) - known)
        if extra:
            raise InvalidArgument(f"{path}: section {number}: unknown key {extra[0]!r} "
                                  f"(known: {', '.join(sorted(known))})")
        missing = [key for key in ("prompt", "duration_s") if key not in table]
        if missing:
            raise InvalidArgument(f"{path}: section {number}: missing {missing[0]!r}")
        name = str(table.get("name", f"section{number}"))
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
            raise InvalidArgument(f"{path}: section {number}: name {name!r} must be letters, digits, . _ -")
        section = Section(name, str(table["prompt"]), float(table["duration_s"]), table.get("seed"),
                          bool(table.get("continue", False)), table.get("temperature"))
        if section.continue_ and not sections:
            raise InvalidArgument(f"{path}: the first section has nothing to continue")
        sections.append(section)
    if not sections:
        raise InvalidArgument(f"{path}: no [[section]] tables")
    return SetList(tuple(sections), data.get("model"), float(data.get("context_s", 6.0)))


def run(args: argparse.Namespace) -> int:
    setlist = read_setlist(args.setlist)
    args.out.mkdir(parents=True, exist_ok=True)
    rendered: list[tuple[np.ndarray, int]] = []
    with connect(args) as client:
        for number, section in enumerate(setlist.sections, start=1):
            options: dict[str, Any] = dict(model=setlist.model, seed=section.seed, temperature=section.temperature,
                           play=True if args.play else None, job=f"{args.setlist.stem}-{number:02d}-{section.name}")
            options = {key: value for key, value in options.items() if value is not None}
            if section.continue_:
                previous, rate = rendered[-1]
                tail = previous[:, -max(1, round(setlist.context_s * rate)):]
                stream = client.continue_(InlineAudio(tail, rate), duration_s=section.duration_s,
                                          prompt=section.prompt, **options)
            else:
                stream = client.generate(section.prompt, duration_s=section.duration_s, **options)
            result = stream.collect()
            rendered.append((result.audio, result.sample_rate))
            path = write_audio(args.out / f"{number:02d}-{section.name}.wav", result.audio, result.sample_rate)
            how = "continues the last section" if section.continue_ else "new"
            print(f"{number:02d} {section.name}: {path} ({result.audio.shape[1] / result.sample_rate:.2f} s, {how})",
                  flush=True)
    if args.join:
        rates = {rate for _, rate in rendered}
        if len(rates) != 1:
            raise InvalidArgument(f"cannot join sections of different sample rates {sorted(rates)}")
        channels = max(audio.shape[0] for audio, _ in rendered)
        whole = np.concatenate([np.broadcast_to(audio, (channels, audio.shape[1])) for audio, _ in rendered], axis=1)
        path = write_audio(args.out / "set.wav", whole, rates.pop())
        print(f"set: {path} ({whole.shape[1] / rendered[0][1]:.2f} s)", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    # The whole docstring, laid out as written: its example set list is the format's reference.
    parser = argparse.ArgumentParser(prog="python -m clients.examples.setlist", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("setlist", type=Path, help="the set list (TOML)")
    parser.add_argument("--out", type=Path, default=Path("set"), help="folder for the sections (default ./set)")
    parser.add_argument("--join", action="store_true", help="also write set.wav, every section back to back")
    parser.add_argument("--play", action="store_true", help="play each section on the daemon's sound card")
    add_connection_arguments(parser)  # --endpoint, --timeout, CurveZMQ keys for a remote daemon
    args = parser.parse_args(argv)
    return exit_status(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
