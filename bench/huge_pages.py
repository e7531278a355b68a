"""Benchmark: the native decode step with its packed weights in huge pages against ordinary 4 KiB pages.

One process, two copies of the same random musicgen-small int8 weights (bench.native_step's
shapes): one packed into huge pages (daemon/native/huge_pages.py, what the daemon loads), one kept
in ordinary pages. One guided stream (2 rows, +kv4 caches as the int8a8+kv4 engine has them) steps
at each of `--positions`, the two copies taking turns step by step, so a busy or slow minute on a
shared machine hits both alike. Per position: the median wall and CPU (all threads) ms of each,
their ratio (huge over 4k), in how many of the adjacent pairs the huge-page step was the faster,
and whether the two gave the same logits bits (bench.step_pairs). Prints a
table, then one JSON object as the last line.

    python -m bench.huge_pages [--threads 2] [--positions 100,1400] [--steps 60] [--kernel int8a8]
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
from daemon.native import huge_pages  # noqa: E402

KINDS = ("4k", "huge")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_cpu_arguments(parser, emulate=False)
    parser.add_argument("--positions", default="100,1400")
    parser.add_argument("--steps", type=int, default=60, help="pairs of steps at each position")
    parser.add_argument("--kernel", choices=("int8", "int8a8"), default="int8a8")
    args = parser.parse_args(argv)
    apply_cpu_arguments(args, "bench.huge_pages")
    if not huge_pages.available():
        print("no transparent huge pages here (THP mode "
              f"{huge_pages.thp_mode() or 'unknown'!r}): both copies would be the same", file=sys.stderr)
    bits = 8 if args.kernel == "int8a8" else 16
    weights = {"4k": Weights(huge_pages=False), "huge": Weights(huge_pages=True)}  # they own the tensors
    models = {kind: weights[kind].with_activation_bits(bits) for kind in KINDS}
    generator = torch.Generator().manual_seed(1)
    positions = [int(p) for p in args.positions.split(",")]
    results = {}
    cpu = this_cpu()
    print(f"CPU: {cpu.model} ({cpu.isa}), {torch.get_num_threads()} threads, {args.kernel}+kv4, one stream (2 rows); "
          f"THP mode {huge_pages.thp_mode() or 'unknown'}")
    print("position   4k ms (cpu)      huge ms (cpu)    huge/4k  huge faster in")
    for position in positions:
        window = Window(max(positions) + 100, generator, kv_bits=4)
        result = alternate(models, window, position, args.steps)
        small, huge = result["4k"], result["huge"]
        assert isinstance(small, dict) and isinstance(huge, dict)
        print(f"{position:8d}   {small['ms']:6.2f} ({small['cpu_ms']:5.2f})   {huge['ms']:6.2f} ({huge['cpu_ms']:5.2f})"
              f"   {result['ratio']:6.3f}   {result['faster_pairs']} pairs")
        results[str(position)] = result
    summary = {"cpu": cpu.model, "isa": cpu.isa, "threads": torch.get_num_threads(), "kernel": args.kernel,
               "thp_mode": huge_pages.thp_mode(), "positions": results}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
