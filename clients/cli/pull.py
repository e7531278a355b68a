"""`riffd pull MODEL`: download a checkpoint into the local Hugging Face cache."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("pull", help="download a model into the local cache",
                                   description="Download a model from the Hugging Face hub so it loads offline later.")
    parser.add_argument("model", help="hub id, e.g. facebook/musicgen-small or openai/jukebox-1b-lyrics")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from daemon.models import registry

    folder = registry.pull(args.model)
    if folder is None:
        print(f"{args.model} is local (a preset or a folder): nothing to download", file=sys.stderr)
        return 0
    print(f"{args.model}: {folder}")
    return 0
