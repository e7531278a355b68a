"""Benchmark: the same N jobs through a --ray daemon with one worker and with two, in one run,
against the in-process daemon (the baseline for first-chunk latency).

Each phase starts a real daemon on loopback: in-process, then `--ray` (a local Ray instance that
the daemon starts and stops) with one worker, then with two; each worker and the in-process daemon
run one job at a time (`--max-batch 1`) on one CPU thread, so the two-worker phase measures what a
second worker adds, not batching. Per phase: the first-chunk latency of a lone job (median of
three, from the request to its first chunk at the client), the wall time of N jobs sent at once
over ZeroMQ, and one jam run unpaced (its lead longer than itself, so it steps as fast as it can:
with --ray every step is a remote call, and the difference per step is what a jam pays for Ray).
Every job's and the jam's audio is compared across the phases (same seeds: it must be equal).
Prints one line per phase, then one JSON object as the last line.

    .venv/bin/python -m bench.cluster [--model debug/musicgen] [--engine float32] [--jobs 8] [--duration 6]
                                      [--jam-duration 4]

The default model is the tiny debug preset, so the run takes a minute or two on a 2-core CPU
(random/musicgen-small in float32 on one thread makes 0.04 s of audio a second there: minutes a phase).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from clients import Client  # noqa: E402
from daemon.config import build_config  # noqa: E402
from daemon.cpu import this_cpu  # noqa: E402
from daemon.embedded import DaemonThread  # noqa: E402
from daemon.models.registry import default_cache_dir  # noqa: E402
from daemon.native.branches import cpu_name  # noqa: E402
from protocol.messages import Chunk, Done, Error  # noqa: E402

LATENCY_RUNS = 3
#: MusicGen's codec frames (decode steps) per second of audio: 32 kHz over a hop of 640.
FRAMES_PER_S = 50


@dataclass
class Phase:
    label: str
    start_s: float
    first_chunk_s: float  # median of LATENCY_RUNS lone jobs
    wall_s: float  # N jobs sent at once
    audio_per_wall: float  # seconds of audio made per second of wall time
    # CPU seconds this process spent per second of audio in the N jobs: with --ray that is the front
    # daemon and the bench's clients (the models run in the workers' processes), an upper bound on
    # what the front costs per stream.
    front_cpu_per_audio_s: float
    workers: tuple[str, ...]
    audio: list[np.ndarray]
    jam_wall_s: float  # one unpaced jam, request to done
    jam_audio: np.ndarray


def _job(endpoint: str, prompt: str, duration_s: float, seed: int) -> tuple[float, float, np.ndarray]:
    """One job over its own client: (seconds to its first chunk, seconds to its end, its audio)."""
    blocks: list[np.ndarray] = []
    first_s = None
    with Client(endpoint, timeout_s=600) as client:
        started = time.perf_counter()
        for event in client.generate(prompt, duration_s=duration_s, seed=seed, chunks=True):
            if isinstance(event, Chunk):
                first_s = first_s if first_s is not None else time.perf_counter() - started
                blocks.append(event.audio)
            elif isinstance(event, Error):
                raise RuntimeError(f"job failed: {event.code}: {event.message}")
            elif isinstance(event, Done):
                assert first_s is not None
                return first_s, time.perf_counter() - started, np.concatenate(blocks, axis=1)
    raise RuntimeError("the job stream ended without a result")


def _jam(endpoint: str, duration_s: float) -> tuple[float, np.ndarray]:
    """One jam of `duration_s` with a lead longer than itself (never paced): (seconds to its done, its audio)."""
    blocks: list[np.ndarray] = []
    with Client(endpoint, timeout_s=600) as client:
        started = time.perf_counter()
        for event in client.jam("bench jam", seed=5, duration_s=duration_s, lead_s=30.0):
            if isinstance(event, Chunk):
                blocks.append(event.audio)
            elif isinstance(event, Error):
                raise RuntimeError(f"jam failed: {event.code}: {event.message}")
            elif isinstance(event, Done):
                return time.perf_counter() - started, np.concatenate(blocks, axis=1)
    raise RuntimeError("the jam's stream ended without a result")


def run_phase(label: str, settings: dict[str, object], jobs: int, duration_s: float, jam_s: float) -> Phase:
    """Start a daemon with `settings`, time a lone job's first chunk, then N jobs at once."""
    with tempfile.TemporaryDirectory(prefix="riffd-bench-cluster-") as out:
        config = build_config(dict(host="127.0.0.1", osc_port=0, zmq_port=0, pub_port=0, out_dir=out,
                                   log_level="WARNING", max_batch=1, cache_dir=default_cache_dir(), **settings))
        loading = time.perf_counter()
        daemon = DaemonThread(config).start(timeout_s=600)
        start_s = time.perf_counter() - loading
        try:
            firsts = [_job(daemon.zmq, "latency probe", 1.0, 100 + run)[0] for run in range(LATENCY_RUNS)]
            results: list[tuple[float, float, np.ndarray] | None] = [None] * jobs

            def one(index: int) -> None:
                results[index] = _job(daemon.zmq, f"bench job {index}", duration_s, index + 1)

            threads = [threading.Thread(target=one, args=(index,)) for index in range(jobs)]
            began, cpu_began = time.perf_counter(), time.process_time()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            wall_s = time.perf_counter() - began
            cpu_s = time.process_time() - cpu_began
            with Client(daemon.zmq) as client:
                workers = client.status().workers
            jam_wall_s, jam_audio = _jam(daemon.zmq, jam_s)
        finally:
            daemon.stop(timeout_s=120)
    done = [result for result in results if result is not None]
    assert len(done) == jobs, "a job did not finish"
    audio_s = jobs * duration_s
    phase = Phase(label, round(start_s, 2), round(statistics.median(firsts), 4), round(wall_s, 3),
                  round(audio_s / wall_s, 3), round(cpu_s / audio_s, 4), workers, [result[2] for result in done],
                  round(jam_wall_s, 3), jam_audio)
    print(f"{label}: started in {start_s:.1f} s; first chunk {phase.first_chunk_s} s (median of {LATENCY_RUNS}); "
          f"{jobs} x {duration_s:g} s jobs in {wall_s:.2f} s ({audio_s / wall_s:.2f} s of audio per s); "
          f"a {jam_s:g} s jam unpaced in {jam_wall_s:.2f} s", flush=True)
    return phase


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="debug/musicgen", help="a preset (random/musicgen-small: the real size)")
    parser.add_argument("--engine", default="float32")
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--duration", type=float, default=6.0, help="seconds of audio per job")
    parser.add_argument("--jam-duration", type=float, default=4.0, help="seconds of the unpaced jam")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import torch

    torch.set_num_threads(1)  # as each Ray worker (one CPU): the in-process baseline on the same footing
    common = dict(models=(args.model,), device="cpu", engine=args.engine)
    phases = [
        run_phase("in-process", dict(common), args.jobs, args.duration, args.jam_duration),
        run_phase("ray 1 worker", dict(common, ray="", ray_workers=1, ray_worker_cpus=1.0), args.jobs, args.duration,
                  args.jam_duration),
        run_phase("ray 2 workers", dict(common, ray="", ray_workers=2, ray_worker_cpus=1.0), args.jobs, args.duration,
                  args.jam_duration),
    ]
    base, one, two = phases
    equal = all(np.array_equal(a, b) for phase in (one, two) for a, b in zip(base.audio, phase.audio, strict=True))
    jam_equal = all(np.array_equal(base.jam_audio, phase.jam_audio) for phase in (one, two))
    jam_steps = args.jam_duration * FRAMES_PER_S
    summary = {
        "model": args.model, "engine": args.engine, "jobs": args.jobs, "duration_s": args.duration,
        "cpu": cpu_name(), "isa": this_cpu().isa, "cores": len(os.sched_getaffinity(0)),
        "wall_s_in_process": base.wall_s, "wall_s_1worker": one.wall_s, "wall_s_2workers": two.wall_s,
        "speedup_2workers": round(one.wall_s / two.wall_s, 3),
        "audio_per_wall_in_process": base.audio_per_wall, "audio_per_wall_1worker": one.audio_per_wall,
        "audio_per_wall_2workers": two.audio_per_wall,
        "first_chunk_s_in_process": base.first_chunk_s, "first_chunk_s_ray": one.first_chunk_s,
        "added_first_chunk_s": round(one.first_chunk_s - base.first_chunk_s, 4),
        "front_cpu_s_per_audio_s": two.front_cpu_per_audio_s,
        "jam_s": args.jam_duration, "jam_wall_s_in_process": base.jam_wall_s, "jam_wall_s_ray": one.jam_wall_s,
        "jam_step_ms_in_process": round(1000 * base.jam_wall_s / jam_steps, 3),
        "jam_step_ms_ray": round(1000 * one.jam_wall_s / jam_steps, 3),
        "added_jam_step_ms": round(1000 * (one.jam_wall_s - base.jam_wall_s) / jam_steps, 3),
        "workers_2": list(two.workers), "audio_equal": equal, "jam_audio_equal": jam_equal,
    }
    print(json.dumps(summary))
    return 0 if equal and jam_equal else 1


if __name__ == "__main__":
    sys.exit(main())
