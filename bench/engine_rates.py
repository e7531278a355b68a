"""Benchmark: decode steps per second of engine modes, as `--engine auto`'s calibration measures them.

A short probe (no transformers baseline, no agreement, no codec): for each mode, one engine over
the same checkpoint decodes a guided, sampled window of `--frames` columns twice after a warm-up,
and the better rate counts (`calibration._rate`). Ratios are against float32 measured in the same
run. Use it to compare the quantised modes (int8 against int4) on a machine; `bench.musicgen_stream`
gives the full picture (time to first audio, bandwidth floor, agreement). Prints one JSON object last.

`--modes bfloat16,bfloat16/pytorch` measures the bfloat16 mode with riffd's kernel (its default on x86)
and with PyTorch's matmul (oneDNN) in its decode steps, one after the other in the same run.

    python -m bench.engine_rates [--model random/musicgen-small] [--modes int4,float32,int8] [--threads 1]
        [--emulate avx2]
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
from pathlib import Path

import torch

from bench.isa import add_cpu_arguments, apply_cpu_arguments, isa_label
from daemon.cpu import this_cpu
from daemon.models.musicgen.calibration import GUIDANCE_SCALE, PROMPTS, _rate
from daemon.models.musicgen.conditioning import build_conditioning
from daemon.models.musicgen.engine import MusicgenEngine
from daemon.models.musicgen.engine_modes import runnable
from daemon.models.musicgen.loader import load_folder
from daemon.models.musicgen import speed
from daemon.models.musicgen.options import EngineOptions
from daemon.models.registry import default_cache_dir, resolve_folder
from daemon.native import isa


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="random/musicgen-small")
    parser.add_argument("--modes", default="int4,float32,int8", help="comma-separated engine modes (float32 added)")
    parser.add_argument("--frames", type=int, default=16, help="columns per timed window")
    parser.add_argument("--cache-dir", type=Path, default=None)
    add_cpu_arguments(parser)
    args = parser.parse_args(argv)
    apply_cpu_arguments(args, "bench.engine_rates")
    modes = [mode.strip() for mode in args.modes.split(",") if mode.strip()]
    if "float32" not in modes:
        modes.append("float32")
    folder = resolve_folder(args.model, cache_dir=args.cache_dir or default_cache_dir())
    bundle = load_folder(folder, model_id=args.model, device=torch.device("cpu"))
    cond = build_conditioning(bundle, list(PROMPTS[:1]), guidance_scale=GUIDANCE_SCALE)
    kernels = isa()  # "none" where riffd's kernels cannot run (int8 and int4 then run as int8dyn)
    print(f"{args.model} on {this_cpu().describe()} as {isa_label(args.emulate)}, {torch.get_num_threads()} threads, "
          f"riffd kernels {kernels}")
    rates: dict[str, float] = {}
    riffd_bf16 = speed.native_bf16_measured_faster
    for mode in modes:
        spec, _, variant = mode.partition("/")  # "bfloat16/pytorch": without riffd's bfloat16 kernel
        options, reason = runnable(EngineOptions.parse(spec + "+nowarmup"), bundle.device)
        if reason:
            print(f"{mode}: {reason}")
        speed.native_bf16_measured_faster = (lambda: False) if variant == "pytorch" else riffd_bf16
        engine = MusicgenEngine(bundle, options)
        speed.native_bf16_measured_faster = riffd_bf16
        rates[mode] = _rate(engine, cond, args.frames)
        print(f"{mode:>14}: {rates[mode]:7.2f} steps/s", flush=True)
        del engine
        gc.collect()
    reference = rates["float32"]
    print(json.dumps({"model": args.model, "cpu": this_cpu().describe(), "emulated": isa_label(args.emulate),
                      "isa": kernels,
                      "threads": torch.get_num_threads(), "frames": args.frames,
                      "steps_per_s": {mode: round(rate, 2) for mode, rate in rates.items()},
                      "vs_float32": {mode: round(rate / reference, 2) for mode, rate in rates.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
