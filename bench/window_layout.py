"""Benchmark: a step with its window's cache laid out for the positions so far against the window-wide layout.

The playing window's cache is allocated for the whole window (kv_cache.py): a (row, head)'s slots lie a
window apart, so early in a window each self-attention head task reads a few short cold streams. The
next window's riding rows already use a compact view grown in stages (handoff.py, `KVCache.narrowed`);
this measures what the same would give the playing rows. One process, one build, the same random
musicgen-small int8 weights (bench.native_step's); one guided stream (2 rows, +kv4 caches as the
int8a8+kv4 engine has them) steps at each of `--positions` in two windows taking turns step by step
(bench.step_pairs): one `--window` positions wide, one `position + --room` wide (its heads' slots
nearly back to back). The two hold different random slots, so their logits differ; a step's time
does not depend on the slots' values. Per position: the median wall and CPU (all threads) ms of
each, their ratio (compact over wide), and in how many adjacent pairs the compact step was the
faster. Prints a table, then one JSON object as the last line.

    python -m bench.window_layout [--threads 2] [--positions 100,300,600] [--steps 60] [--window 1500]
        [--room 100] [--kernel int8a8]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import daemon  # noqa: E402, F401  (before torch: see daemon/__init__.py)
import torch  # noqa: E402

from bench.isa import add_cpu_arguments, apply_cpu_arguments  # noqa: E402
from bench.native_step import Weights, Window  # noqa: E402
from bench.step_pairs import alternate  # noqa: E402
from daemon.cpu import this_cpu  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_cpu_arguments(parser, emulate=False)
    parser.add_argument("--positions", default="100,300,600")
    parser.add_argument("--steps", type=int, default=60, help="pairs of steps at each position")
    parser.add_argument("--window", type=int, default=1500, help="the wide window's positions (a 30 s window)")
    parser.add_argument("--room", type=int, default=100, help="the compact window's positions past the step's")
    parser.add_argument("--kernel", choices=("int8", "int8a8"), default="int8a8")
    args = parser.parse_args(argv)
    apply_cpu_arguments(args, "bench.window_layout")
    positions = [int(p) for p in args.positions.split(",")]
    if args.room < 1 or max(positions) + args.room > args.window:
        raise SystemExit(f"--positions + --room must fit the --window of {args.window}")
    weights = Weights()  # owns the packed tensors the model points into: kept alive to the end
    model = weights.with_activation_bits(8 if args.kernel == "int8a8" else 16)
    generator = torch.Generator().manual_seed(1)
    cpu = this_cpu()
    print(f"CPU: {cpu.model} ({cpu.isa}), {torch.get_num_threads()} threads, {args.kernel}+kv4, one stream (2 rows); "
          f"wide window {args.window} positions, compact position + {args.room}")
    print("position   wide ms (cpu)    compact ms (cpu)  compact/wide  compact faster in")
    results = {}
    for position in positions:
        wide, compact = Window(args.window, generator, kv_bits=4), Window(position + args.room, generator, kv_bits=4)
        result = alternate({"wide": model, "compact": model}, wide, position, args.steps,
                           own={"wide": (wide, None), "compact": (compact, None)})
        result.pop("same_bits")  # different slots: not a comparison of bits
        old, new = result["wide"], result["compact"]
        assert isinstance(old, dict) and isinstance(new, dict)
        print(f"{position:8d}   {old['ms']:6.2f} ({old['cpu_ms']:5.2f})   {new['ms']:6.2f} ({new['cpu_ms']:5.2f})"
              f"    {result['ratio']:6.3f}       {result['faster_pairs']} pairs")
        results[str(position)] = result
    summary = {"cpu": cpu.model, "isa": cpu.isa, "threads": torch.get_num_threads(), "kernel": args.kernel,
               "window": args.window, "room": args.room, "positions": results}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
