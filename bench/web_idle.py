"""Benchmark: what the web studio costs a daemon's jobs, against the same daemon with --no-web, in one run.

Three daemons on 127.0.0.1 serve the same model: studio off (the baseline), studio on with no tab
open, and studio on with a tab watching (a WebSocket client reading every board update). The same
ZeroMQ jobs (defaults: debug/musicgen, 6 jobs of 2 s, seeds 0..5) take turns on the three, so the
shared machine's load falls on all alike. Prints the median wall time per job and each variant's
ratio to the baseline, then one JSON object as the last line.

    python -m bench.web_idle [--model debug/musicgen] [--jobs 6] [--duration 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import aiohttp  # noqa: E402

from clients import Client  # noqa: E402
from daemon.embedded import DaemonThread, start_on_loopback  # noqa: E402
from daemon.native.branches import cpu_flags, cpu_name  # noqa: E402
from protocol.messages import Done  # noqa: E402


def job_seconds(daemon: DaemonThread, duration_s: float, seed: int) -> float:
    with Client(daemon.zmq, timeout_s=600) as client:
        started = time.perf_counter()
        last = list(client.generate("bench", duration_s=duration_s, seed=seed))[-1]
        elapsed = time.perf_counter() - started
    if not isinstance(last, Done):
        raise RuntimeError(f"job failed: {last}")
    return elapsed


class Watcher:
    """A tab: a WebSocket reading the studio's messages on its own thread until stopped."""

    def __init__(self, url: str) -> None:
        self.messages = 0
        self._url = url.replace("http://", "ws://").replace("/?token=", "/ws?token=")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._thread.start()

    async def _run(self) -> None:
        async with aiohttp.ClientSession() as session, session.ws_connect(self._url) as socket:
            while not self._stop.is_set():
                try:
                    await socket.receive(timeout=0.2)
                    self.messages += 1
                except TimeoutError:
                    pass

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="debug/musicgen")
    parser.add_argument("--jobs", type=int, default=6)
    parser.add_argument("--duration", type=float, default=2.0)
    args = parser.parse_args()
    logging.basicConfig(level="WARNING")
    same: dict[str, object] = {"engine": "float32", "warm_conform": False}
    with tempfile.TemporaryDirectory() as out:
        daemons = {
            # One engine for all three (auto could pick differently per daemon), and no conform
            # warm-up (seconds of CPU on a thread) beside the jobs timed.
            "off": start_on_loopback((args.model,), Path(out) / "off", web=False, **same),
            "idle": start_on_loopback((args.model,), Path(out) / "idle", **same),
            "watched": start_on_loopback((args.model,), Path(out) / "watched", **same),
        }
        url = daemons["watched"].addresses.web_url
        assert url is not None and daemons["idle"].addresses.web_url is not None
        watcher = Watcher(url)
        times: dict[str, list[float]] = {name: [] for name in daemons}
        try:
            for daemon in daemons.values():
                job_seconds(daemon, args.duration, seed=99)  # warm each path once
            for seed in range(args.jobs):
                for name, daemon in daemons.items():
                    times[name].append(job_seconds(daemon, args.duration, seed))
        finally:
            watcher.stop()
            for daemon in daemons.values():
                daemon.stop()
    median = {name: statistics.median(values) for name, values in times.items()}
    for name in daemons:
        print(f"{name:8s} median {median[name] * 1000:8.1f} ms per {args.duration:g} s job, "
              f"ratio to --no-web {median[name] / median['off']:.3f}")
    print(f"the watching tab read {watcher.messages} messages")
    isa = " ".join(sorted(cpu_flags() & {"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni"}))
    print(json.dumps({"bench": "web_idle", "cpu": cpu_name(), "isa": isa, "model": args.model, "jobs": args.jobs,
                      "duration_s": args.duration,
                      "median_s": {k: round(v, 4) for k, v in median.items()},
                      "ratio_idle": round(median["idle"] / median["off"], 3),
                      "ratio_watched": round(median["watched"] / median["off"], 3),
                      "tab_messages": watcher.messages}))


if __name__ == "__main__":
    main()
