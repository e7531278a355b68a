"""Benchmark: a switch in the daemon's own job path on and off, in one process, alternating.

The daemon's path as it runs a job: the backend loaded as `riffd serve` loads it (`--engine`,
continuous batching on), one streamed job at a time on a worker thread (`stream()`: its windows step
through `StepBatch._step`, a long job's next window riding the last steps, the codec's pushes between
steps on the same thread). On a shared 2-core machine separate daemon runs minutes apart differ by
more than the change measured (a 60 s job's riding steps' median went 13.9-19.5 ms job to job here),
so the switch takes turns within the process:

- `--alternate block` (default): within each job, flipped every `--block-steps` shared steps (the first
  block on, then off, ...; the next job starts off). Per kind of step, the median of the on/off ratios
  of adjacent blocks' medians, in how many block pairs "on" was the faster, and each arm's median and
  mean over its steps. A job's wall is both arms'.
- `--alternate job`: job by job (on-off, then off-on, ...), after one warm-up job each way as long as
  the measured ones (a process's first long job pays its caches' first touch). Per arm the medians
  over its jobs (wall, step medians, the job's report), per pair of jobs the on/off ratios. Coarse:
  a busy minute falls on one job.

Switches:
- `one-call`: the shared step as one native call (step_draw.py, `StepBatch._step_draw`) against the
  calls one by one (the embedding, the step, each window's draw).
- `ride-stages`: the next window's context riding views of its cache laid out for the positions so far
  (handoff.RIDE_STAGE_POSITIONS) against riding the window-sized cache (a next window riding at a flip
  moves to the other layout then: that step pays a move, ~2-5 ms for musicgen-small).
- `window-stages`: the playing window's rows stepping in views of its cache laid out for the positions so
  far (handoff.WINDOW_STAGE_POSITIONS), moved on as it fills, against the window-sized cache (a window
  playing at a flip moves to the other layout then: that step pays a move, up to the whole cache's bytes).

A step is all of `StepBatch._step` (a perf_counter around it): early (a window's first tenth of
positions, nothing riding), riding (the next window's context rows in the step), late (a window's
last tenth, as the daemon's done event counts them) or other. The collector runs as in the daemon,
the loaded model frozen out of its full scans (its collections counted per job, the longest pause given). Every job has the same seed: the
switch claims the same codes, so every job's audio must hash alike (checked).

Prints a line per job and a summary, then one JSON object as the last line.

    python -m bench.path_ab [--switch one-call|ride-stages|window-stages] [--engine int8a8+kv4] [--duration 60] [--pairs 4]
        [--alternate block|job] [--block-steps 25] [--threads 2] [--emulate avx2] [--ride-stage 150]
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from bench.isa import add_cpu_arguments, apply_cpu_arguments, isa_label  # noqa: E402


def one_call_switch(backend: Any) -> Callable[[bool], None]:
    """`set(on)`: the batch's shared step as one native call (on) or as the calls one by one (off)."""
    batch = backend.batch
    kept = batch._step_draw
    if kept is None:
        raise SystemExit("this engine has no one-call step here (StepDraw.build gave None)")

    def set_on(on: bool) -> None:
        batch._step_draw = kept if on else None

    return set_on


def ride_stages_switch(backend: Any) -> Callable[[bool], None]:
    """`set(on)`: a long job's next window's context rides views of its cache laid out for the positions
    so far (handoff.RIDE_STAGE_POSITIONS, on) or the window-sized cache itself (off). Flipped between
    steps (on the stepping thread), a next window riding now is moved to the other layout at once."""
    from daemon.models.musicgen import handoff

    stage = handoff.RIDE_STAGE_POSITIONS
    if stage <= 0:
        raise SystemExit("this checkout rides the window-sized cache (handoff.RIDE_STAGE_POSITIONS 0)")
    batch = backend.batch

    def set_on(on: bool) -> None:
        handoff.RIDE_STAGE_POSITIONS = stage if on else 0
        for stream in list(batch._streams):
            warming = stream.successor
            if warming is None or warming.slot >= warming.context_frames:
                continue
            if not on and warming.whole is not None:
                warming.handed()  # its stages' slots moved to the window's layout, riding on there
                warming.whole = None
            elif on and warming.whole is None and stage < warming.cache.max_positions:
                whole, warming.stage = warming.cache, stage
                warming.whole = whole
                warming.cache = handoff.staged_view(whole, whole, warming.slot, max(warming.slot, 1), stage)

    return set_on


def window_stages_switch(backend: Any) -> Callable[[bool], None]:
    """`set(on)`: the playing windows' rows step in views of their caches laid out for the positions so far
    (handoff.WINDOW_STAGE_POSITIONS, on) or in the window-sized caches (off). Flipped between steps (on the
    stepping thread), a window playing now is moved to the other layout at once."""
    from daemon.models.musicgen import handoff

    stage = handoff.WINDOW_STAGE_POSITIONS
    if stage <= 0:
        raise SystemExit("this checkout steps the playing window in its window-sized cache (handoff.WINDOW_STAGE_POSITIONS 0)")
    batch = backend.batch

    def set_on(on: bool) -> None:
        handoff.WINDOW_STAGE_POSITIONS = stage if on else 0
        for stream in list(batch._streams):
            whole = stream.whole or stream.cache
            filled = stream.first_slot + stream.step - 1  # slots written: the next step writes this one
            stream.cache = handoff.staged_view(whole, stream.cache, filled, filled + 1, stage if on else 0)
            stream.whole, stream.stage = (whole, stage) if stream.cache is not whole else (None, 0)

    return set_on


KINDS = ("early", "riding", "late", "other")
SWITCHES: dict[str, Callable[[Any], Callable[[bool], None]]] = {"one-call": one_call_switch,
                                                                "ride-stages": ride_stages_switch,
                                                                "window-stages": window_stages_switch}


class StepClock:
    """Each shared step's seconds with its kind (early, riding or other), whether it is a late one (the window's
    last tenth) and the switch's setting, around `StepBatch._step`; with `block_steps`, the switch flips every
    that many steps (`start(on)` sets the first block's)."""

    def __init__(self, batch: Any, edge: int, late_from: int, switch: Callable[[bool], None],
                 block_steps: int | None = None) -> None:
        self.steps: list[tuple[str, bool, bool, float]] = []  # (kind, late, on, seconds)
        self.on = True
        step = batch._step

        def timed_step(streams: list[Any]) -> None:
            if block_steps and self.steps and len(self.steps) % block_steps == 0:
                self.on = not self.on
                switch(self.on)
            riding = any(s.successor is not None and s.successor.due() for s in streams)
            position = min(s.first_slot + s.step - 1 for s in streams)
            start = time.perf_counter()
            try:
                step(streams)
            finally:
                took_s = time.perf_counter() - start
                kind = "riding" if riding else "early" if position < edge else "other"
                self.steps.append((kind, position >= late_from, self.on, took_s))

        self._switch = switch
        batch._step = timed_step

    def start(self, on: bool) -> None:
        """A new job, its steps (its first block's) with the switch `on`."""
        self.steps.clear()
        self.on = on
        self._switch(on)


def run_job(backend: Any, prompt: str, duration_s: float, seed: int) -> tuple[float, Any, str]:
    """One streamed job on a worker thread (as the daemon's runner runs it): its wall seconds, its
    report, and its audio's hash."""
    from protocol.params import GenerationParams

    out: dict[str, Any] = {}

    def work() -> None:
        digest = hashlib.sha256()
        started = time.perf_counter()
        try:
            chunks = backend.stream(prompt, GenerationParams(duration_s=duration_s, seed=seed), batched=True,
                                    label=f"job{seed}")
            while True:
                try:
                    chunk = next(chunks)
                except StopIteration as stop:
                    out["report"] = stop.value
                    break
                digest.update(chunk.audio.tobytes())
        except BaseException as error:  # noqa: BLE001 - re-raised on the main thread
            out["error"] = error
        out["wall_s"] = time.perf_counter() - started
        out["hash"] = digest.hexdigest()[:16]

    worker = threading.Thread(target=work, name="job")
    worker.start()
    worker.join()
    if "error" in out:
        raise out["error"]
    return out["wall_s"], out["report"], out["hash"]


def summarize(steps: list[tuple[str, bool, bool, float]]) -> dict[str, float | int | None]:
    """Per kind of step (and the late ones, the window's last tenth): count, median and mean ms."""
    out: dict[str, float | int | None] = {}
    for kind in KINDS:
        times = [1e3 * s for k, late, _, s in steps if (late if kind == "late" else k == kind)]
        out[f"{kind}_n"] = len(times)
        out[f"{kind}_median_ms"] = round(statistics.median(times), 3) if times else None
        out[f"{kind}_mean_ms"] = round(statistics.fmean(times), 3) if times else None
    out["steps"] = len(steps)
    out["step_sum_s"] = round(sum(s for *_, s in steps), 3)
    return out


def block_ratios(steps: list[tuple[str, bool, bool, float]], block_steps: int,
                 least: int) -> dict[str, list[tuple[float, float]]]:
    """Per kind, (on, off) median ms of each two adjacent blocks of `block_steps` steps (one each way) that
    both hold at least `least` steps of that kind."""
    blocks = [steps[i:i + block_steps] for i in range(0, len(steps), block_steps)]
    out: dict[str, list[tuple[float, float]]] = {kind: [] for kind in KINDS}
    for first, second in zip(blocks[::2], blocks[1::2]):
        for kind in KINDS:
            medians: dict[bool, float] = {}
            for block in (first, second):
                times = [1e3 * s for k, late, _, s in block if (late if kind == "late" else k == kind)]
                if len(times) >= least:
                    medians[block[0][2]] = statistics.median(times)
            if len(medians) == 2:
                out[kind].append((medians[True], medians[False]))
    return out


def job_summary(jobs: list[dict[str, Any]]) -> dict[str, Any]:
    """Jobs alternating: each arm's medians over its jobs, and the on/off ratios of each pair's two jobs."""
    keys = ("wall_s", "early_median_ms", "riding_median_ms", "late_median_ms", "early_mean_ms", "riding_mean_ms",
            "late_mean_ms", "step_sum_s", "report_codec_s")
    arms = {label: [j for j in jobs if j["on"] is on] for label, on in (("on", True), ("off", False))}
    medians = {label: {k: round(statistics.median(j[k] for j in arm), 3) if all(j[k] is not None for j in arm) else None
                       for k in keys} for label, arm in arms.items()}
    ratios: dict[str, Any] = {}
    for k in keys:
        pairs = [(on[k], off[k]) for on, off in zip(arms["on"], arms["off"]) if on[k] is not None and off[k] is not None]
        if pairs:
            ratios[k] = {"median_on_over_off": round(statistics.median(a / b for a, b in pairs), 4),
                         "on_faster_pairs": sum(a < b for a, b in pairs), "pairs": len(pairs)}
    print(f"{'':22} {'on':>9} {'off':>9} {'on/off':>8} on faster")
    for k in keys:
        r = ratios.get(k)
        print(f"{k:22} {medians['on'][k]!s:>9} {medians['off'][k]!s:>9} "
              f"{'' if r is None else r['median_on_over_off']:>8} "
              f"{'' if r is None else str(r['on_faster_pairs']) + '/' + str(r['pairs'])}")
    return {"medians": medians, "ratios": ratios}


def block_summary(blocks: dict[str, list[tuple[float, float]]],
                  pooled: list[tuple[str, bool, bool, float]]) -> dict[str, Any]:
    """Blocks alternating: per kind of step, the median of the on/off ratios of adjacent blocks' medians, in how
    many block pairs "on" was the faster, and each arm's median and mean over all its steps of that kind."""
    out: dict[str, Any] = {}
    print(f"{'kind':8} {'on ms':>8} {'off ms':>8} {'on mean':>8} {'off mean':>8} {'on/off':>7} on faster (block pairs)")
    for kind in KINDS:
        found = blocks[kind]
        arms = {on: [1e3 * s for k, late, o, s in pooled if o is on and (late if kind == "late" else k == kind)]
                for on in (True, False)}
        if not found or not all(arms.values()):
            continue
        row = {"on_median_ms": round(statistics.median(arms[True]), 3),
               "off_median_ms": round(statistics.median(arms[False]), 3),
               "on_mean_ms": round(statistics.fmean(arms[True]), 3), "off_mean_ms": round(statistics.fmean(arms[False]), 3),
               "block_ratio_median": round(statistics.median(a / b for a, b in found), 4),
               "on_faster_blocks": sum(a < b for a, b in found), "block_pairs": len(found)}
        out[kind] = row
        print(f"{kind:8} {row['on_median_ms']:8.3f} {row['off_median_ms']:8.3f} {row['on_mean_ms']:8.3f} "
              f"{row['off_mean_ms']:8.3f} {row['block_ratio_median']:7.4f} {row['on_faster_blocks']}/{row['block_pairs']}")
    return {"kinds": out}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--switch", choices=sorted(SWITCHES), default="one-call")
    parser.add_argument("--model", default="random/musicgen-small")
    parser.add_argument("--engine", default="int8a8+kv4")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of audio in each job")
    parser.add_argument("--pairs", type=int, default=4,
                        help="on/off pairs of jobs (after one warm-up job each way); with --alternate block, jobs")
    parser.add_argument("--alternate", choices=("job", "block"), default="block",
                        help="flip the switch job by job, or every --block-steps shared steps within each job")
    parser.add_argument("--block-steps", type=int, default=25)
    parser.add_argument("--warmup-duration", type=float, default=None,
                        help="seconds of audio in each warm-up job (default: --duration job by job, 4 block by block)")
    add_cpu_arguments(parser, threads_help="torch's and the kernels' threads")
    parser.add_argument("--prompt", default="80s pop track with bassy drums and synth")
    parser.add_argument("--ride-stage", type=int, default=None,
                        help="with --switch ride-stages: the stage's positions when on (default handoff.RIDE_STAGE_POSITIONS)")
    args = parser.parse_args(argv)
    apply_cpu_arguments(args, "bench.path_ab")

    import torch

    from daemon.models.musicgen.backend import MusicGen
    from daemon.models.musicgen.stream_timing import EDGE_FRACTION
    from daemon.models.registry import load_backend
    from daemon.native import isa
    from daemon.native.branches import cpu_name
    from daemon.residency import freeze_resident

    backend = load_backend(args.model, device="cpu", engine=args.engine)
    if not isinstance(backend, MusicGen):
        raise SystemExit(f"{args.model} is not a MusicGen model")
    freeze_resident()  # as the daemon's load does
    if args.ride_stage is not None:
        from daemon.models.musicgen import handoff
        handoff.RIDE_STAGE_POSITIONS = args.ride_stage
    switch = SWITCHES[args.switch](backend)
    window = backend.bundle.window_frames
    edge = max(1, int(window * EDGE_FRACTION))
    block_steps = args.block_steps if args.alternate == "block" else None
    clock = StepClock(backend.batch, edge, window - edge, switch, block_steps)
    # The collector's collections, counted per job.
    collections: list[tuple[int, float]] = []
    started_at: list[float] = []

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started_at.append(time.perf_counter())
        elif started_at:
            collections.append((info["generation"], time.perf_counter() - started_at.pop()))

    gc.callbacks.append(on_gc)
    for on in (True, False) if block_steps is None else (True,):
        clock.start(on)
        # Job by job, a first long job pays its caches' first touch (measured 5-15 % slower): one each way as long
        # as the measured ones. Block by block both arms share it: a short one warms the code.
        warmup_s = args.warmup_duration or (args.duration if block_steps is None else 4.0)
        run_job(backend, args.prompt, warmup_s, seed=0)

    jobs: list[dict[str, Any]] = []
    blocks: dict[str, list[tuple[float, float]]] = {kind: [] for kind in KINDS}
    pooled: list[tuple[str, bool, bool, float]] = []
    for pair in range(args.pairs):
        # job by job: on-off, off-on, ...; block by block: one job a pair, its first block on, then off, ...
        order = (True, False) if pair % 2 == 0 else (False, True)
        for on in order if block_steps is None else order[:1]:
            clock.start(on)
            collections.clear()
            wall_s, report, digest = run_job(backend, args.prompt, args.duration, seed=0)
            job = {"pair": pair, "on": on if block_steps is None else "blocks", "wall_s": round(wall_s, 3),
                   "hash": digest, "report_step_s": round(report.step_s, 3), "report_codec_s": round(report.codec_s, 3),
                   "report_early_ms": report.early_step_ms and round(report.early_step_ms, 3),
                   "report_late_ms": report.late_step_ms and round(report.late_step_ms, 3),
                   "gc": [sum(g == generation for g, _ in collections) for generation in range(3)],
                   "gc_max_ms": round(1e3 * max((s for _, s in collections), default=0.0), 1),
                   "load": round(os.getloadavg()[0], 2), **summarize(clock.steps)}
            jobs.append(job)
            pooled.extend(clock.steps)
            if block_steps is not None:
                for kind, found in block_ratios(clock.steps, block_steps, max(3, block_steps // 5)).items():
                    blocks[kind].extend(found)
            print(json.dumps(job), flush=True)
    gc.callbacks.remove(on_gc)
    same_audio = len({j["hash"] for j in jobs}) == 1
    print(f"CPU: {cpu_name()} ({isa_label(args.emulate)}), kernels {isa()}, {torch.get_num_threads()} threads, "
          f"engine {backend.engine_name}; switch {args.switch}; {args.pairs} pairs of {args.duration:g} s jobs"
          f"{'' if block_steps is None else f' (one job a pair, the switch flipped every {block_steps} steps)'}; "
          f"same audio in every job: {same_audio}")
    summary: dict[str, Any] = {
        "cpu": cpu_name(), "isa": isa(), "emulated": args.emulate, "isa_class": isa_label(args.emulate),
        "threads": torch.get_num_threads(), "engine": backend.engine_name, "switch": args.switch, "ride_stage": args.ride_stage,
        "alternate": args.alternate, "block_steps": block_steps, "duration_s": args.duration, "pairs": args.pairs,
        "same_audio": same_audio}
    if block_steps is None:
        summary.update(job_summary(jobs))
    else:
        summary.update(block_summary(blocks, pooled))
    print(json.dumps(summary))
    if not same_audio:
        raise SystemExit("the two arms' audio differs: the switch changed the codes")
    return summary


if __name__ == "__main__":
    main()
