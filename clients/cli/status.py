"""`riffd status`: what a running daemon has loaded and is doing."""

from __future__ import annotations

import argparse
import json

from clients.cli.common import add_connection_arguments, connect


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("status", help="show the daemon's models and jobs")
    parser.add_argument("--json", action="store_true", help="print the status event as JSON")
    add_connection_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    with connect(args) as client:
        status = client.status()
    if args.json:
        print(json.dumps({"type": status.TYPE, **status.to_fields()}, indent=2))
        return 0
    print(f"riffd (protocol {status.protocol}) on {status.device}, up {status.uptime_s:.0f} s")
    models = [f"{model} [{engine}]" if engine else model
              for model, engine in zip(status.models, status.engines or ("",) * len(status.models))]
    print(f"models:  {', '.join(models) or '(none loaded)'}; default {status.default_model}")
    running, queued = status.jobs[:status.running], status.jobs[status.running:]
    print(f"running: {', '.join(running) or '-'}")
    if status.batched:
        print(f"batched: {', '.join(status.batched)} (sharing each decode step)")
    print(f"queued:  {', '.join(queued) or '-'} ({status.queued} of {status.max_queue})")
    if status.resumed:
        print(f"resumed: {', '.join(status.resumed)} (accepted by an earlier daemon on this folder)")
    for line in status.workers:  # --ray: one per cluster worker
        print(f"worker:  {line}")
    underruns = f", {status.underruns} underrun{'' if status.underruns == 1 else 's'}" if status.playback != "off" else ""
    print(f"playback: {status.playback}{underruns}")
    if status.clock != "none":
        peers = f", {status.peers} Link peer{'' if status.peers == 1 else 's'}" if status.clock == "link" else ""
        print(f"tempo:   {status.tempo:.2f} BPM ({status.clock}{peers}), beat {status.beat:.2f}, phase {status.phase:.2f}")
    return 0
