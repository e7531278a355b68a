"""Benchmark: a long job's native decode steps as the daemon schedules them, two engine modes taking turns.

What auto's calibration estimates for a native mode (calibration._job_costs), measured step by step: a
`--duration` job's windows (longform.py) at the default stride, each window's steps at its positions in a
cache of the daemon's window size, and the next window's context riding the window's last steps as
handoff.py feeds it (one column a step, its BOS with the window's first step, in the stage view the
daemon's riding rows use: handoff.stage_view), each step one `step_streams` call with the riding
window's logits skipped, as `StepBatch._step` makes it. No sampling and no codec (the same in every
mode). The two modes take turns every `--block-steps` steps of the job in one process (the host's
memory bandwidth moves within seconds here), each in caches of its own holding random codes (a step's
time does not depend on their values).

Prints per mode the steps' milliseconds a frame of audio, the riding and the other steps' means, the
early steps' median; the median over block pairs of the second mode's block time over the first's, and
in how many blocks the second was faster; one JSON object as the last line.

    python -m bench.job_steps_ab [--engines int8+kv4,int8a8+kv4] [--duration 60] [--block-steps 25]
        [--threads 2] [--emulate avx2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from bench.isa import add_cpu_arguments, apply_cpu_arguments, isa_label  # noqa: E402

#: Steps counted as early (their median shown): a window's first positions.
EARLY_POSITIONS = 150


def schedule(windows: list[Any], delay_steps: int) -> list[tuple[int, int, int | None]]:
    """Each step of a job of `windows` as the daemon runs it: (window index, the window's position, the slot
    of the next window's context column riding the step or None). As batch.StepBatch with handoff.Warming
    (one column a step): the next window's BOS column rides the first step; its context column c, made by
    the step whose column it is, rides the step after."""
    steps: list[tuple[int, int, int | None]] = []
    for index, (window, following) in enumerate(zip(windows, [*windows[1:], None])):
        context = following.prompt_frames if following is not None else 0
        rides: dict[int, int] = {0: 0} if context else {}
        shift = window.prompt_frames + window.new_frames - context
        for step in range(window.new_frames + delay_steps):
            made = window.prompt_frames + 1 + step - shift  # the context column this step's column becomes
            if context and 1 <= made < context:
                rides[step + 1] = made
        steps += [(index, window.prompt_frames + step, rides.get(step)) for step in range(window.new_frames + delay_steps)]
    return steps


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="random/musicgen-small")
    parser.add_argument("--engines", default="int8+kv4,int8a8+kv4", help="two engine modes on riffd's native step")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of audio in the job")
    parser.add_argument("--block-steps", type=int, default=25)
    add_cpu_arguments(parser, threads_help="torch's and the kernels' threads")
    args = parser.parse_args(argv)
    apply_cpu_arguments(args, "bench.job_steps_ab")

    import torch

    from daemon.models.musicgen import calibration
    from daemon.models.musicgen.backend import MusicGen
    from daemon.models.musicgen.conditioning import build_conditioning
    from daemon.models.musicgen.delay import delay_steps
    from daemon.models.musicgen.engine import MusicgenEngine
    from daemon.models.musicgen.handoff import RIDE_STAGE_POSITIONS, cache_positions, share_condition, stage_view
    from daemon.models.musicgen.longform import plan_windows
    from daemon.models.musicgen.loop import plan_window
    from daemon.models.musicgen.options import EngineOptions
    from daemon.models.registry import load_backend
    from daemon.native import isa
    from daemon.native.branches import cpu_name
    from daemon.residency import freeze_resident

    modes = args.engines.split(",")
    if len(modes) != 2:
        raise SystemExit("--engines takes two modes")
    backend = load_backend(args.model, device="cpu", engine=modes[0] + "+nowarmup")
    if not isinstance(backend, MusicGen):
        raise SystemExit(f"{args.model} is not a MusicGen model")
    bundle = backend.bundle
    del backend
    engines = {mode: MusicgenEngine(bundle, EngineOptions.parse(mode + "+nowarmup")) for mode in modes}
    if any(engine.decoder.native is None for engine in engines.values()):
        raise SystemExit("both modes must run on riffd's native step here")
    freeze_resident()
    cond = build_conditioning(bundle, list(calibration.PROMPTS[:1]), guidance_scale=calibration.GUIDANCE_SCALE)
    windows = plan_windows(round(args.duration * bundle.frame_rate), 0, bundle.window_frames,
                           calibration._stride(bundle))
    steps = schedule(windows, delay_steps(bundle.num_codebooks, bundle.audio_channels))
    frames = sum(w.new_frames for w in windows)
    generator = torch.Generator().manual_seed(0)
    times: dict[str, list[tuple[float, int, bool]]] = {mode: [] for mode in modes}  # (seconds, position, riding)
    with ExitStack() as stack, torch.inference_mode():
        runs = {}
        for mode, engine in engines.items():
            decoder = engine.decoder
            rows = cond.hidden_states.shape[0]
            caches = [stack.enter_context(decoder.open_cache(rows, cache_positions(w, bundle))) for w in windows]
            pattern, _ = plan_window(bundle, cond, None, 1)
            decoder.prefill(caches[0], cond, pattern.inputs)  # the condition's cross-attention
            for cache in caches[1:]:
                share_condition(caches[0], cache)
            for cache in caches:
                calibration._random_slots(cache, generator)
            runs[mode] = (decoder, caches, pattern.inputs[..., 0])
        for block, start in enumerate(range(0, len(steps), args.block_steps)):
            for mode in modes if block % 2 == 0 else modes[::-1]:
                decoder, caches, column = runs[mode]
                for index, position, context in steps[start:start + args.block_steps]:
                    if context is None:
                        window, columns, positions = [caches[index]], [column], [position]
                    else:
                        riding = stage_view(caches[index + 1], context + 1, RIDE_STAGE_POSITIONS)
                        window, columns, positions = [caches[index], riding], [column, column], [position, context]
                    started = time.perf_counter()
                    decoder.step_streams(window, columns, positions, logit_windows=1)
                    times[mode].append((time.perf_counter() - started, position, context is not None))
    summary: dict[str, Any] = {"cpu": cpu_name(), "isa": isa(), "isa_class": isa_label(args.emulate),
                               "threads": torch.get_num_threads(), "duration_s": args.duration,
                               "block_steps": args.block_steps, "modes": {}}
    for mode in modes:
        got = times[mode]
        summary["modes"][mode] = {
            "ms_per_frame": round(1e3 * sum(s for s, _, _ in got) / frames, 3),
            "riding_mean_ms": round(1e3 * statistics.fmean(s for s, _, r in got if r), 3) if any(r for *_, r in got) else None,
            "other_mean_ms": round(1e3 * statistics.fmean(s for s, _, r in got if not r), 3),
            "early_median_ms": round(1e3 * statistics.median(s for s, p, r in got if p < EARLY_POSITIONS and not r), 3)}
    first, second = modes
    ratios = [sum(s for s, _, _ in times[second][i:i + args.block_steps]) /
              sum(s for s, _, _ in times[first][i:i + args.block_steps]) for i in range(0, len(steps), args.block_steps)]
    summary["block_ratio_median"] = round(statistics.median(ratios), 4)
    summary["second_faster_blocks"] = f"{sum(r < 1 for r in ratios)}/{len(ratios)}"
    print(f"CPU: {cpu_name()} ({isa_label(args.emulate)}), kernels {isa()}, {torch.get_num_threads()} threads; "
          f"a {args.duration:g} s job: {len(steps)} steps, {sum(c is not None for *_, c in steps)} riding")
    for mode, row in summary["modes"].items():
        print(f"{mode:14} {json.dumps(row)}")
    print(f"{second} / {first}: block ratio median {summary['block_ratio_median']}, "
          f"{second} faster in {summary['second_faster_blocks']} blocks")
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
