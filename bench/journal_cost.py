"""Benchmark: what durable work (issue 18) costs, against the same work not journaled, in one run.

1. A live OSC take's wait from request to `started`: `save 1` (journaled: the entry is written and
   synced at acceptance, the state as it starts) against `save 0` (not journaled), alternating on
   one in-process daemon with the fake tone model (so the model's time does not hide the journal's).
2. One Jukebox checkpoint save (numpy archive, fsync, rename, fsync of the folder) for the
   8192-sample debug piece's codes and for 3.6 M tokens (about 3 minutes of 5b-lyrics codes).

Figures depend on the disk (fsync); name it with the CPU. Prints one JSON object last.

    .venv/bin/python -m bench.journal_cost [--takes 60]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # the fake model and the OSC peer of the test harness

import numpy as np  # noqa: E402
from daemon_harness import OscPeer, start_fake_daemon  # type: ignore[import-not-found]  # noqa: E402

from daemon.journal import Journal  # noqa: E402


def take_latency_ms(takes: int) -> dict[str, float]:
    waits: dict[int, list[float]] = {0: [], 1: []}
    with tempfile.TemporaryDirectory() as tmp, start_fake_daemon(Path(tmp) / "out") as daemon:
        peer = OscPeer(daemon.osc_port)
        try:
            for index in range(takes):
                save = index % 2
                job = f"take{index}"
                started_at = time.perf_counter()
                peer.send("/riffd/generate", "x", 0.25, "job", job, "save", save)
                while True:
                    address, args = peer.receive()
                    if address == "/riffd/started" and args[0] == job:
                        waits[save].append(time.perf_counter() - started_at)
                    if address in ("/riffd/done", "/riffd/error") and args[0] == job:
                        break
        finally:
            peer.close()
    plain, journaled = (statistics.median(waits[save]) * 1000 for save in (0, 1))
    return {"started_ms_not_journaled": round(plain, 2), "started_ms_journaled": round(journaled, 2),
            "journal_ms_per_take": round(journaled - plain, 2)}


def checkpoint_ms(tokens: int, repeats: int = 20) -> float:
    arrays: dict[str, np.ndarray] = {f"tokens_{level}": np.zeros((1, tokens // factor), np.int32)
                                     for level, factor in enumerate((16, 4, 1))}
    arrays.update(rng_state=np.zeros(5056, np.uint8), pushes=np.zeros(64, np.int64), seed=np.array(1))
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = Journal(Path(tmp)).checkpoint("bench")
        times = []
        for step in range(repeats):
            started_at = time.perf_counter()
            checkpoint.save(arrays, step, repeats)
            times.append(time.perf_counter() - started_at)
    return round(statistics.median(times) * 1000, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--takes", type=int, default=60)
    args = parser.parse_args()
    result: dict[str, object] = dict(take_latency_ms(args.takes))
    result["checkpoint_ms_debug_piece"] = checkpoint_ms(1024)
    result["checkpoint_ms_3_6m_tokens"] = checkpoint_ms(3_600_000)
    result["temp_dir"] = tempfile.gettempdir()
    result["cpu"] = platform.processor() or platform.machine()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
