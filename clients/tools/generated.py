"""Files generated from code (patches, the protocol reference): write them, or check them."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def generator_main(argv: list[str] | None, *, prog: str, description: str,
                   files: Mapping[Path, Callable[[], str]]) -> int:
    """`prog [--check]`: write every file from its builder, or with --check exit 1 naming the
    committed files that differ from what the builders make."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--check", action="store_true", help="compare with the committed files, write nothing")
    args = parser.parse_args(argv)
    stale = []
    for path, build in files.items():
        text = build()
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path)
        else:
            path.write_text(text)
    for path in stale:
        print(f"{path.relative_to(ROOT)} is out of date: run {prog}", file=sys.stderr)
    return 1 if stale else 0
