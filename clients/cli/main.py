"""The `riffd` command: one subcommand per module, each with `register(subparsers)`.

Subcommands that need torch (render, serve, pull) import it only when they run, so the
client commands stay light.
"""

from __future__ import annotations

import argparse
import importlib
import sys

import zmq

from clients.cli.common import DAEMON_SILENT_HINT, file_error
from protocol.errors import RiffdError

# Each module defines register(subparsers) that adds its parser with set_defaults(run=...).
_SUBCOMMAND_MODULES = (
    "clients.cli.render",
    "clients.cli.pull",
    "clients.cli.serve",
    "clients.cli.generate",
    "clients.cli.continue_",
    "clients.cli.jukebox",
    "clients.cli.jam",
    "clients.cli.status",
    "clients.cli.cancel",
    "clients.cli.models",
    "clients.cli.keys",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="riffd", description="riffd: music generation, served and streamed.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more (and show tracebacks)")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in _SUBCOMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except RiffdError as exc:
        if args.verbose:
            raise
        print(f"riffd: error: {exc.message} [{exc.code}]", file=sys.stderr)
        return 2
    except TimeoutError as exc:
        if args.verbose:
            raise
        print(f"riffd: error: {exc} ({DAEMON_SILENT_HINT})", file=sys.stderr)
        return 2
    except OSError as exc:
        # A file the command could not write: a line with its code, not a traceback.
        if args.verbose:
            raise
        error = file_error(exc)
        print(f"riffd: error: {error.message} [{error.code}]", file=sys.stderr)
        return 2
    except zmq.ZMQError as exc:
        # An endpoint that is not one: a line, not a traceback.
        if args.verbose:
            raise
        print(f"riffd: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("riffd: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
