"""Benchmark: what the daemon adds on top of the model, against the model alone, in the same run.

For the same requests (defaults: debug/musicgen, 8 jobs of 2 s, seeds 0..7) it times the
backend's `stream()` called directly in this process, on a worker thread as the daemon runs its
jobs (the baseline), the same job through a daemon on 127.0.0.1 over ZeroMQ (Python client), and
over OSC/UDP (WAV file per chunk, replies to the sender). The three paths take turns on each seed so the shared machine's load falls on
all alike. Prints median wall time per job, time to the first audio and each path's ratio to
the baseline, then one JSON object as the last line.

    .venv/bin/python -m bench.daemon_overhead [--model debug/musicgen] [--engine float32] [--jobs 8] [--duration 2]
"""

from __future__ import annotations

import argparse
import json
import os
import logging
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from pythonosc.osc_message_builder import OscMessageBuilder  # noqa: E402

from clients import Client  # noqa: E402
from daemon.models.registry import load_backend  # noqa: E402
from daemon.embedded import start_on_loopback  # noqa: E402
from daemon.models.musicgen.backend import MusicGen  # noqa: E402
from daemon.native.branches import cpu_name  # noqa: E402
from protocol import osc  # noqa: E402
from protocol.messages import Chunk, Done  # noqa: E402
from protocol.params import GenerationParams  # noqa: E402


def on_a_thread(fn, *args):
    """`fn(*args)` on a worker thread, as the daemon runs jobs, so both paths run the same way."""
    result = []
    thread = threading.Thread(target=lambda: result.append(fn(*args)))
    thread.start()
    thread.join()
    return result[0]


def timed(events, is_audio, is_end) -> tuple[float, float]:
    """(seconds to the end, seconds to the first audio) of an event iterator."""
    started = time.perf_counter()
    first = None
    for event in events:
        if first is None and is_audio(event):
            first = time.perf_counter() - started
        if is_end(event):
            break
    return time.perf_counter() - started, first or 0.0


class OscPeer:
    """Sends OSC requests from one UDP port and yields the daemon's replies."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(120)

    def generate(self, prompt: str, duration_s: float, seed: int, job: str):
        builder = OscMessageBuilder("/riffd/generate")
        for arg in (prompt, float(duration_s), "seed", seed, "job", job):
            builder.add_arg(arg)
        self.sock.sendto(builder.build().dgram, ("127.0.0.1", self.port))
        while True:
            [(address, args)] = osc.parse_packet(self.sock.recv(65536))
            yield address, args
            if address in ("/riffd/done", "/riffd/error") and args[0] == job:
                assert address == "/riffd/done", args
                return


PATHS = ("direct stream()", "zeromq (daemon)", "osc+wav (daemon)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="debug/musicgen")
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--engine", default="float32",
                        help="engine mode of both the backend alone and the daemon's (the same, or the ratio "
                             "compares two engines: the daemon's own default is auto)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    backend = load_backend(args.model, device="cpu", engine=args.engine)
    assert isinstance(backend, MusicGen), f"{args.model} is not a MusicGen model"
    rows: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in PATHS}
    zmq_events, zmq_busy_s = 0, 0.0
    with tempfile.TemporaryDirectory() as out:
        daemon = start_on_loopback((args.model,), Path(out), engine=args.engine, device="cpu")
        addresses = daemon.daemon.addresses
        assert addresses is not None
        client, peer = Client(addresses.zmq_endpoint), OscPeer(addresses.osc_port)
        try:
            # Seed -1 warms every path up; then the three paths take turns on each seed, so the
            # load other processes put on this shared machine falls on all of them alike.
            for seed in range(-1, args.jobs):
                prompt, params = f"job {seed}", GenerationParams(duration_s=args.duration, seed=abs(seed))
                results = {
                    PATHS[0]: on_a_thread(timed, backend.stream(prompt, params), lambda c: True, lambda c: False),
                    PATHS[1]: timed(client.generate(prompt, duration_s=args.duration, seed=abs(seed)),
                                    lambda e: isinstance(e, Chunk), lambda e: isinstance(e, Done)),
                    PATHS[2]: timed(peer.generate(prompt, args.duration, abs(seed), f"osc{seed}"),
                                    lambda m: m[0] == "/riffd/chunk", lambda m: False),
                }
                if seed < 0:
                    continue
                for name, (total, first) in results.items():
                    rows[name][0].append(total)
                    rows[name][1].append(first)
            started = time.perf_counter()
            zmq_events = len(list(client.generate("rate", duration_s=args.duration, seed=1)))
            zmq_busy_s = time.perf_counter() - started
        finally:
            client.close()
            daemon.stop()

    med = statistics.median
    print(f"{args.jobs} jobs of {args.duration:g} s on {args.model} (medians)")
    print(f"{'path':<26}{'job s':>9}{'first audio s':>15}{'ratio':>8}")
    base = med(rows[PATHS[0]][0])
    summary: dict[str, object] = {"model": args.model, "engine": args.engine, "jobs": args.jobs,
                                  "duration_s": args.duration, "cpu": cpu_name(), "load_avg_1m": round(os.getloadavg()[0], 2)}
    for name, (totals, firsts) in rows.items():
        print(f"{name:<26}{med(totals):>9.3f}{med(firsts):>15.3f}{med(totals) / base:>8.2f}")
        key = name.split()[0].strip(",").lower()
        summary.update({f"{key}_job_s": med(totals), f"{key}_first_audio_s": med(firsts), f"{key}_ratio": med(totals) / base})
    print(f"ZeroMQ: {zmq_events} events of one job in {zmq_busy_s:.3f} s")
    summary["zmq_events_one_job"] = zmq_events
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
