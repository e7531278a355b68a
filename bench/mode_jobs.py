"""Benchmark: what a long job costs each engine mode a frame in the daemon's own path, modes taking turns in one process.

Each mode's backend loaded as `riffd serve` loads it (continuous batching on), then jobs of `--duration`
seconds streamed on a worker thread as the daemon's runner streams them (bench.path_ab's `run_job`: the
windows step through `StepBatch._step`, the next window's context riding the last 600 steps, the codec
between steps), the modes taking turns job by job (A B, then B A, ...), after a short warm-up job each.
Per job: the shared steps' seconds a frame of audio (what auto's calibration estimates: `frame_s`), the
early / riding / other steps' mean ms, and the job's wall. Per mode the median over its jobs, and the
ratio of each mode's step seconds a frame to the first mode's within each pair (the host's moment
shared).

    python -m bench.mode_jobs [--engines int8+kv4,int8a8+kv4] [--duration 60] [--pairs 2] [--threads 2]
        [--emulate avx2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from bench.isa import add_cpu_arguments, apply_cpu_arguments, isa_label  # noqa: E402
from bench.path_ab import StepClock, run_job, summarize  # noqa: E402


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="random/musicgen-small")
    parser.add_argument("--engines", default="int8+kv4,int8a8+kv4", help="comma-separated engine modes")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of audio in each job")
    parser.add_argument("--pairs", type=int, default=2, help="rounds in which every mode runs one job")
    add_cpu_arguments(parser, threads_help="torch's and the kernels' threads")
    parser.add_argument("--prompt", default="80s pop track with bassy drums and synth")
    args = parser.parse_args(argv)
    apply_cpu_arguments(args, "bench.mode_jobs")

    import torch

    from daemon.models.musicgen.backend import MusicGen
    from daemon.models.musicgen.stream_timing import EDGE_FRACTION
    from daemon.models.registry import load_backend
    from daemon.native import isa
    from daemon.native.branches import cpu_name
    from daemon.residency import freeze_resident

    modes = args.engines.split(",")
    backends: dict[str, Any] = {}
    clocks: dict[str, StepClock] = {}
    for mode in modes:
        backend = load_backend(args.model, device="cpu", engine=mode)
        if not isinstance(backend, MusicGen):
            raise SystemExit(f"{args.model} is not a MusicGen model")
        window = backend.bundle.window_frames
        edge = max(1, int(window * EDGE_FRACTION))
        backends[mode] = backend
        clocks[mode] = StepClock(backend.batch, edge, window - edge, lambda on: None)
    freeze_resident()  # as the daemon's load does
    frame_rate = next(iter(backends.values())).bundle.frame_rate
    for mode in modes:
        run_job(backends[mode], args.prompt, 4.0, seed=0)  # the code and the buffers warmed

    jobs: list[dict[str, Any]] = []
    for pair in range(args.pairs):
        for mode in modes if pair % 2 == 0 else list(reversed(modes)):
            clocks[mode].start(True)
            wall_s, report, _ = run_job(backends[mode], args.prompt, args.duration, seed=0)
            steps = summarize(clocks[mode].steps)
            frames = args.duration * frame_rate
            job = {"pair": pair, "mode": backends[mode].engine_name, "wall_s": round(wall_s, 3),
                   "step_ms_per_frame": round(1e3 * float(steps["step_sum_s"] or 0) / frames, 3),
                   "rtf": round(args.duration / wall_s, 3), "codec_s": round(report.codec_s, 3), **steps}
            jobs.append(job)
            print(json.dumps(job), flush=True)
    summary: dict[str, Any] = {"cpu": cpu_name(), "isa": isa(), "isa_class": isa_label(args.emulate),
                               "threads": torch.get_num_threads(), "duration_s": args.duration, "modes": {}}
    first = modes[0]
    for mode in modes:
        mine = [j for j in jobs if j["mode"] == backends[mode].engine_name]
        theirs = [j for j in jobs if j["mode"] == backends[first].engine_name]
        summary["modes"][mode] = {
            key: round(statistics.median(j[key] for j in mine), 3) if all(j[key] is not None for j in mine) else None
            for key in ("step_ms_per_frame", "wall_s", "rtf", "early_mean_ms", "riding_mean_ms", "other_mean_ms",
                        "late_mean_ms")}
        summary["modes"][mode]["per_frame_vs_" + first] = [round(a["step_ms_per_frame"] / b["step_ms_per_frame"], 3)
                                                            for a, b in zip(mine, theirs, strict=True)]
    print(f"CPU: {cpu_name()} ({isa_label(args.emulate)}), kernels {isa()}, {torch.get_num_threads()} threads")
    for mode, row in summary["modes"].items():
        print(f"{mode:14} {json.dumps(row)}")
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
