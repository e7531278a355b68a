"""Benchmark: Jukebox through the daemon, against the backend alone, in the same run.

1. Streaming: for the same pieces (seeds 0..N-1, taking turns) it times the Jukebox backend's
   `sample()` called in this process (the baseline) and the same job over ZeroMQ: time to the
   first preview chunk, to the first upsampled (final) chunk, and to the end, with ratios.
2. Live requests during a render: a MusicGen request alone (baseline), and the same request
   sent while a Jukebox render runs (the render pauses between tokens for it); ratio of the
   two, and how long the request would have waited for the render to end instead.

Prints a table, then one JSON object as the last line.

    /tmp/venv/bin/python -m bench.jukebox_daemon [--pieces 2] [--jobs 4] [--live-jobs 4]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from clients import Client  # noqa: E402
from daemon.models.registry import load_backend  # noqa: E402
from daemon.models.jukebox.backend import JukeboxBackend, JukeboxControls  # noqa: E402
from daemon.embedded import start_on_loopback  # noqa: E402
from protocol.messages import Chunk, Done, Progress  # noqa: E402

PIECE_SAMPLES = 16384  # one top-level window of debug/jukebox
LABELS: dict[str, Any] = dict(artist="zac brown band", genres="country", lyrics="hello")


def stage_times(items, stage_of, is_end) -> tuple[float, float, float]:
    """Seconds to the first preview chunk, the first final chunk and the end."""
    started = time.perf_counter()
    first: dict[str, float] = {}
    for item in items:
        stage = stage_of(item)
        if stage is not None and stage not in first:
            first[stage] = time.perf_counter() - started
        if is_end(item):
            break
    return first.get("preview", 0.0), first.get("final", 0.0), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pieces", type=int, default=2, help="piece length in top-level windows (16384 samples)")
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--live-jobs", type=int, default=4)
    parser.add_argument("--live-duration", type=float, default=1.0, help="seconds of MusicGen per live request")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    duration_s = args.pieces * PIECE_SAMPLES / 44100
    with tempfile.TemporaryDirectory() as tmp:
        backend = load_backend("debug/jukebox", device="cpu")
        assert isinstance(backend, JukeboxBackend)
        daemon = start_on_loopback(("debug/musicgen", "debug/jukebox"), Path(tmp))
        port = daemon.zmq
        rows: dict[str, list[tuple[float, float, float]]] = {"direct sample()": [], "zeromq (daemon)": []}
        live_alone, live_during, render_left = [], [], []
        with Client(port, timeout_s=600) as client:
            for seed in range(args.jobs):
                controls = JukeboxControls(seed=seed, **LABELS)
                rows["direct sample()"].append(stage_times(backend.sample(controls, duration_s),
                                                           lambda c: c.stage, lambda c: False))
                stream = client.jukebox_sample(duration_s, seed=seed, model="debug/jukebox", **LABELS)
                rows["zeromq (daemon)"].append(stage_times(
                    stream, lambda e: e.stage if isinstance(e, Chunk) else None, lambda e: isinstance(e, Done)))
            for seed in range(args.live_jobs):
                started = time.perf_counter()
                client.generate("live pad", args.live_duration, seed=seed, model="debug/musicgen").collect()
                live_alone.append(time.perf_counter() - started)
                render = iter(client.jukebox_sample(duration_s, seed=seed, model="debug/jukebox", **LABELS))
                next(e for e in render if isinstance(e, Progress))
                sent = time.perf_counter()
                client.generate("live pad", args.live_duration, seed=seed, model="debug/musicgen").collect()
                served = time.perf_counter()
                live_during.append(served - sent)
                next(e for e in render if isinstance(e, Done))
                render_left.append(time.perf_counter() - sent)
        daemon.stop()

    base = [statistics.median(col) for col in zip(*rows["direct sample()"])]
    print(f"debug/jukebox, {args.pieces} windows ({duration_s:.2f} s) x {args.jobs} jobs; medians in seconds")
    print(f"{'path':18} {'preview':>8} {'final':>8} {'end':>8} {'end ratio':>10}")
    result: dict[str, object] = {"piece_s": duration_s, "jobs": args.jobs}
    for name, samples in rows.items():
        preview, final, end = (statistics.median(col) for col in zip(*samples))
        print(f"{name:18} {preview:8.3f} {final:8.3f} {end:8.3f} {end / base[2]:10.2f}")
        result[name] = {"preview_s": preview, "first_final_s": final, "end_s": end, "end_ratio": end / base[2]}
    alone, during, left = (statistics.median(x) for x in (live_alone, live_during, render_left))
    print(f"live MusicGen {args.live_duration:g} s: alone {alone:.3f} s, during a render {during:.3f} s "
          f"(ratio {during / alone:.2f}); the render ended {left:.3f} s after the request was sent")
    result["live"] = {"alone_s": alone, "during_render_s": during, "ratio": during / alone,
                      "render_end_after_send_s": left}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
