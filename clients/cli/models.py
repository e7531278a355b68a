"""`riffd models [--load ID] [--unload ID]`: list, load or release a running daemon's models."""

from __future__ import annotations

import argparse

from clients.cli.common import add_connection_arguments, connect


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("models", help="list the daemon's resident models, or load/unload one")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--load", metavar="ID", help="load (and keep) a model so its first job starts at once")
    action.add_argument("--unload", metavar="ID", help="release a resident model")
    add_connection_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    with connect(args) as client:
        if args.load:
            client.load(args.load)
            print(f"loaded {args.load}")
        elif args.unload:
            client.unload(args.unload)
            print(f"unloaded {args.unload}")
        else:
            models = client.models()
            for model_id in models.loaded:
                print(f"{model_id}{'  (default)' if model_id == models.default_model else ''}")
            if models.default_model not in models.loaded:
                print(f"default {models.default_model} (not loaded: loads on first use)")
    return 0
