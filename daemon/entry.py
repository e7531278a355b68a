"""Starting the daemon from a command line: logging, config, the asyncio loop."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from daemon.config import add_arguments, config_from_args
from protocol.errors import RiffdError


def run(args: argparse.Namespace) -> int:
    """Run the daemon with parsed `add_arguments` flags until SIGINT/SIGTERM."""
    config = config_from_args(args)
    level = "DEBUG" if getattr(args, "verbose", False) else config.log_level
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    quiet_python_osc()
    from daemon.server.app import serve

    asyncio.run(serve(config))
    return 0


def quiet_python_osc(logger: logging.Logger | None = None) -> logging.Filter:
    """Drop python-osc's per-argument warning for unknown type tags (it logs on the root logger:
    a stranger could fill the log with one packet a millisecond). The packet is still answered.
    Returns the filter installed, so it can be removed."""

    class _DropUnknownTypeTags(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return not (isinstance(record.msg, str) and record.msg.startswith("Unhandled parameter type"))

    log_filter = _DropUnknownTypeTags()
    (logger or logging.getLogger()).addFilter(log_filter)
    return log_filter


def main(argv: list[str] | None = None) -> int:
    """`python -m daemon`: the same flags as `riffd serve`."""
    parser = argparse.ArgumentParser(prog="python -m daemon", description="Run the riffd daemon.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log everything")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except RiffdError as exc:
        print(f"riffd: error: {exc.message} [{exc.code}]", file=sys.stderr)
        return 2
