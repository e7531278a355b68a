"""Load: many ZeroMQ clients at once, and an OSC flood beside them, against a real daemon.

32 clients (threads, each its own DEALER socket) send several debug/musicgen requests each at
the same moment, then read their streams. Every request must either complete (chunks in order,
offsets contiguous, frames adding up to `done`, no event of another job) or be refused at once
with `queue_full`; nothing lost, nothing duplicated. The daemon runs as its own process so its
resident memory (before, peak, after) is its own. Then an OSC flood (UDP, thousands of packets a
second, bounded in count and time) runs while a ZeroMQ client asks for status and renders: the
status round trip under the flood is printed against the same round trip without it (same run).

    /tmp/venv/bin/python -m bench.daemon_load [--clients 32] [--requests 4] [--duration 0.5]
        [--flood-packets 20000] [--flood-rate 10000]

The last line is a JSON object with every figure. tests/hardening/test_load.py runs a lighter
version of the same checks against an in-process daemon.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from pythonosc.osc_message_builder import OscMessageBuilder  # noqa: E402

from clients import Client  # noqa: E402
from daemon.child import DaemonChild  # noqa: E402
from protocol.messages import Accepted, Chunk, Done, Error, Event, Progress, Started  # noqa: E402


@dataclass
class Outcome:
    """What became of one request: `done`, `refused` (queue_full at once) or `failed` (with why)."""

    client: int
    request: int
    kind: str
    job: str = ""
    chunks: int = 0
    frames: int = 0
    first_event_s: float = 0.0
    detail: str = ""


def check_stream(events: list[Event]) -> tuple[str, str, int, int, str]:
    """(kind, job, chunks, frames, detail) of one request's events; `failed` says what was wrong."""
    if not events:
        return "failed", "", 0, 0, "no events"
    first = events[0]
    if isinstance(first, Error):
        if first.code == "queue_full" and len(events) == 1:
            return "refused", first.job, 0, 0, ""
        return "failed", first.job, 0, 0, f"error {first.code}: {first.message}"
    if not isinstance(first, Accepted):
        return "failed", "", 0, 0, f"first event is {first.TYPE}"
    job = first.job
    terminals = [e for e in events if isinstance(e, (Done, Error))]
    if len(terminals) != 1 or terminals[0] is not events[-1]:
        return "failed", job, 0, 0, f"{len(terminals)} terminal events, last is {events[-1].TYPE}"
    foreign = [e for e in events if getattr(e, "job", job) != job]
    if foreign:
        return "failed", job, 0, 0, f"{len(foreign)} events of other jobs"
    chunks = [e for e in events if isinstance(e, Chunk)]
    offset = 0
    for expected_index, chunk in enumerate(chunks):
        if chunk.index != expected_index or chunk.offset_samples != offset:
            return "failed", job, 0, 0, f"chunk {chunk.index} at {chunk.offset_samples}, expected " \
                                        f"{expected_index} at {offset}"
        if chunk.audio is None or chunk.audio.shape != (chunk.channels, chunk.frames):
            return "failed", job, 0, 0, f"chunk {chunk.index} audio does not match its header"
        offset += chunk.frames
    last = events[-1]
    if isinstance(last, Error):
        return "failed", job, len(chunks), offset, f"ended with {last.code}: {last.message}"
    if last.frames != offset:
        return "failed", job, len(chunks), offset, f"done says {last.frames} frames, chunks hold {offset}"
    unexpected = [e.TYPE for e in events if not isinstance(e, (Accepted, Started, Progress, Chunk, Done))]
    if unexpected:
        return "failed", job, len(chunks), offset, f"unexpected events {unexpected}"
    return "done", job, len(chunks), offset, ""


def run_clients(endpoint: str, *, clients: int = 32, requests: int = 4, duration_s: float = 0.5,
                model: str | None = None, timeout_s: float = 120.0) -> list[Outcome]:
    """Start `clients` threads at one moment, each sending `requests` jobs, then reading them all."""
    barrier = threading.Barrier(clients)
    outcomes: list[Outcome] = []
    lock = threading.Lock()

    def one_client(number: int) -> None:
        mine: list[Outcome] = []
        try:
            with Client(endpoint, timeout_s=timeout_s) as client:
                barrier.wait(timeout=60)
                sent_at = time.perf_counter()
                streams = [client.generate(f"client {number} take {n}", duration_s=duration_s, model=model,
                                           seed=number * 1000 + n) for n in range(requests)]
                for n, stream in enumerate(streams):
                    events: list[Event] = []
                    first_s = 0.0
                    for event in stream:
                        if not events:
                            first_s = time.perf_counter() - sent_at
                        events.append(event)
                    kind, job, chunks, frames, detail = check_stream(events)
                    mine.append(Outcome(number, n, kind, job, chunks, frames, first_s, detail))
        except Exception as exc:  # noqa: BLE001 - reported as a failed request, not a crashed bench
            mine.append(Outcome(number, -1, "failed", detail=f"{type(exc).__name__}: {exc}"))
        with lock:
            outcomes.extend(mine)

    threads = [threading.Thread(target=one_client, args=(n,), daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout_s + 60)
    return outcomes


def summarize(outcomes: list[Outcome], expected: int) -> dict:
    kinds = Counter(o.kind for o in outcomes)
    done_jobs = [o.job for o in outcomes if o.kind == "done"]
    refused_s = [o.first_event_s for o in outcomes if o.kind == "refused"]
    return {
        "requests": expected, "answered": len(outcomes), "done": kinds["done"], "refused_queue_full": kinds["refused"],
        "failed": kinds["failed"], "duplicate_jobs": len(done_jobs) - len(set(done_jobs)),
        "chunks": sum(o.chunks for o in outcomes), "refusal_max_s": round(max(refused_s, default=0.0), 3),
        "failures": [f"client {o.client} request {o.request}: {o.detail}" for o in outcomes if o.kind == "failed"][:5],
    }


class RssSampler:
    """Resident memory of a process (VmRSS), sampled on a thread: before, peak, after."""

    def __init__(self, pid: int, interval_s: float = 0.02) -> None:
        self._path = Path(f"/proc/{pid}/status")
        self._interval_s = interval_s
        self.before_mib = self.read_mib()
        self.peak_mib = self.before_mib
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def read_mib(self) -> float:
        found = re.search(r"VmRSS:\s+(\d+) kB", self._path.read_text())
        return int(found.group(1)) / 1024 if found else 0.0

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.peak_mib = max(self.peak_mib, self.read_mib())

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mib = max(self.peak_mib, self.read_mib())


def osc_flood(port: int, *, packets: int, rate_per_s: float, max_s: float) -> tuple[int, float]:
    """Send up to `packets` UDP packets to 127.0.0.1:port at about `rate_per_s`, for at most
    `max_s` seconds: status requests and garbage, from a socket that never reads its replies.
    Returns (packets sent, seconds taken)."""
    status = OscMessageBuilder("/riffd/status").build().dgram
    rng = random.Random(0)
    garbage = [rng.randbytes(rng.randrange(1, 200)) for _ in range(64)]
    sent = 0
    started = time.perf_counter()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.bind(("127.0.0.1", 0))
        while sent < packets:
            elapsed_s = time.perf_counter() - started
            if elapsed_s > max_s:
                break
            due = int(elapsed_s * rate_per_s) + 1
            while sent < min(due, packets):
                sock.sendto(status if sent % 2 else garbage[sent % len(garbage)], ("127.0.0.1", port))
                sent += 1
            time.sleep(0.001)
    return sent, time.perf_counter() - started


def status_round_trips(endpoint: str, *, count: int, pause_s: float = 0.01) -> list[float]:
    """Seconds each of `count` status requests took, one after another."""
    times = []
    with Client(endpoint, timeout_s=30) as client:
        for _ in range(count):
            started = time.perf_counter()
            client.status()
            times.append(time.perf_counter() - started)
            time.sleep(pause_s)
    return times


def render_s(endpoint: str, duration_s: float) -> float:
    with Client(endpoint, timeout_s=60) as client:
        started = time.perf_counter()
        events = list(client.generate("under the flood", duration_s=duration_s, seed=1))
        if not isinstance(events[-1], Done):
            raise RuntimeError(f"render failed: {events[-1]}")
        return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="debug/musicgen")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=4, help="requests per client (default 4)")
    parser.add_argument("--duration", type=float, default=0.5, help="seconds of audio per request")
    parser.add_argument("--max-queue", type=int, default=16)
    parser.add_argument("--flood-packets", type=int, default=20000)
    parser.add_argument("--flood-rate", type=float, default=10000.0, help="packets per second")
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="riffd-load-"))
    # One thread in the daemon: the load generator shares the machine's cores with it.
    daemon = DaemonChild(["--model", args.model, "--device", "cpu", "--out", str(out), "--osc-port", "0",
                          "--zmq-port", "0", "--max-queue", str(args.max_queue), "--no-warm-conform"],
                         env={"OMP_NUM_THREADS": "1"})
    try:
        render_s(daemon.zmq, args.duration)  # warm: the first job's one-time costs are not load
        time.sleep(0.5)
        with RssSampler(daemon.process.pid) as rss:
            started = time.perf_counter()
            outcomes = run_clients(daemon.zmq, clients=args.clients, requests=args.requests,
                                   duration_s=args.duration, model=args.model)
            wall_s = time.perf_counter() - started
            time.sleep(1.0)  # let the daemon settle (and collect) before the "after" reading
            after_mib = rss.read_mib()
        load = summarize(outcomes, args.clients * args.requests)
        load.update(wall_s=round(wall_s, 2), rss_before_mib=round(rss.before_mib, 1),
                    rss_peak_mib=round(rss.peak_mib, 1), rss_after_mib=round(after_mib, 1))
        print(f"load: {args.clients} clients x {args.requests} requests of {args.duration} s ({args.model}), "
              f"max queue {args.max_queue}: {load['done']} done, {load['refused_queue_full']} refused with "
              f"queue_full (slowest refusal {load['refusal_max_s']} s), {load['failed']} failed, "
              f"{load['duplicate_jobs']} duplicated, {load['chunks']} chunks, {wall_s:.1f} s")
        print(f"daemon resident memory: before {rss.before_mib:.0f} MiB, peak {rss.peak_mib:.0f} MiB, "
              f"after {after_mib:.0f} MiB (after/before {after_mib / rss.before_mib:.2f})")
        for failure in load["failures"]:
            print(f"  FAILED {failure}")

        # OSC flood: status round trips and a render, without and then with the flood.
        quiet = status_round_trips(daemon.zmq, count=50)
        quiet_render_s = render_s(daemon.zmq, args.duration)
        flood_result: dict = {}

        def send_flood() -> None:
            sent, seconds = osc_flood(daemon.osc_port, packets=args.flood_packets, rate_per_s=args.flood_rate,
                                      max_s=max(5.0, 2 * args.flood_packets / args.flood_rate))
            flood_result.update(sent=sent, seconds=seconds)

        flooder = threading.Thread(target=send_flood)
        flooder.start()
        time.sleep(0.2)
        flooded = status_round_trips(daemon.zmq, count=50)
        flooded_render_s = render_s(daemon.zmq, args.duration)
        flooder.join()
        alive = status_round_trips(daemon.zmq, count=3)
        flood = {
            "packets_sent": flood_result.get("sent", 0), "flood_s": round(flood_result.get("seconds", 0.0), 2),
            "status_median_quiet_ms": round(statistics.median(quiet) * 1000, 2),
            "status_median_flood_ms": round(statistics.median(flooded) * 1000, 2),
            "status_max_flood_ms": round(max(flooded) * 1000, 2),
            "render_quiet_s": round(quiet_render_s, 3), "render_flood_s": round(flooded_render_s, 3),
            "served_after": len(alive) == 3,
        }
        rate = flood["packets_sent"] / max(flood["flood_s"], 1e-9)
        print(f"OSC flood: {flood['packets_sent']} packets in {flood['flood_s']} s ({rate:.0f}/s); ZeroMQ status "
              f"median {flood['status_median_quiet_ms']} ms quiet vs {flood['status_median_flood_ms']} ms flooded "
              f"(ratio {flood['status_median_flood_ms'] / flood['status_median_quiet_ms']:.2f}, worst "
              f"{flood['status_max_flood_ms']} ms); render {quiet_render_s:.2f} s quiet vs {flooded_render_s:.2f} s "
              f"flooded (ratio {flooded_render_s / quiet_render_s:.2f})")
    finally:
        daemon.stop()
    print(json.dumps({"load": load, "flood": flood}))
    ok = load["failed"] == 0 and load["duplicate_jobs"] == 0 and load["answered"] == load["requests"]
    return 0 if ok and flood["served_after"] else 1


if __name__ == "__main__":
    sys.exit(main())
