"""Benchmark: a next window's context riding one column a step against k columns every k steps, one process.

A long job's late steps carry the next window's context (handoff.py). One column a step, each step
pays the riding rows' self-attention over their window's cold slots and their share of the products;
k columns in one step (2k rows of the same cache at k consecutive positions, `riffd_step_rows`
attending a head's k positions in one task) read each head's slots once and the weights once for
all of them, then k - 1 steps go alone. This steps one guided stream (2 rows, +kv4 caches) of
musicgen-small-shaped random weights (bench.native_step's) at `--position`, and a riding window
at `--riding` onwards, in cycles of k steps: one-column cycles and k-column cycles in turn (which
goes first alternating), so a busy minute hits both alike. Per k: the mean step of each (ms, over
the cycle's k steps), their ratio, the k-column riding step's mean and max (the burst), and
whether both left the same bits (the playing rows' logits and the riding window's cache).
Prints a table, then one JSON object as the last line.

    python -m bench.ride_columns [--columns 2,4,8] [--cycles 40] [--position 1400] [--riding 300] [--threads 2]
        [--emulate avx2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import daemon  # noqa: E402, F401  (before torch: see daemon/__init__.py)
import torch  # noqa: E402

from bench.isa import add_cpu_arguments, apply_cpu_arguments, isa_label  # noqa: E402
from bench.native_step import HIDDEN, Weights, Window  # noqa: E402
from daemon.cpu import this_cpu  # noqa: E402
from daemon.native.decoder_step import NativeModel, RowBatch  # noqa: E402


def _cache_bytes(window: Window) -> list[torch.Tensor]:
    # as bytes: +kv4's float16 scales hold the int8 head's float32 ones (kv_cache.py), no NaN compares unequal
    return [t.clone().view(torch.uint8) for t in window.keys + window.values + window.key_scales + window.value_scales]


def _steps(model: NativeModel, plan: list[tuple[RowBatch, torch.Tensor]]) -> tuple[list[float], torch.Tensor]:
    """Each step of `plan` (its batch, positions set, and inputs) timed; the first step's playing logits."""
    times, first = [], None
    for batch, x in plan:
        hidden = x.clone()
        start = time.perf_counter()
        logits = model.step(hidden, batch, logit_rows=2)
        times.append(1e3 * (time.perf_counter() - start))
        if first is None:
            first = logits
    assert first is not None
    return times, first


def compare(model: NativeModel, window: Window, position: int, riding: Window, first_slot: int, columns: int,
            cycles: int) -> dict[str, object]:
    """`cycles` pairs of k-step cycles (one column a step, then k columns in the first step), in turn."""
    generator = torch.Generator().manual_seed(columns)
    x_main = torch.randn(2, HIDDEN, generator=generator)
    x_ride = torch.randn(2 * columns, HIDDEN, generator=generator)  # column i's two rows at 2i, 2i + 1
    slots = [first_slot + i for i in range(columns)]
    single = model.batch(window.rows + riding.rows)
    alone = model.batch(window.rows)
    alone.set_positions([position, position])
    together = model.batch(window.rows + riding.rows * columns)
    together.set_positions([position, position] + [slot for slot in slots for _ in range(2)])
    # One column a step: a batch each, its positions set once (a RowBatch holds them).
    singles = []
    for slot in slots:
        batch = model.batch(window.rows + riding.rows)
        batch.set_positions([position, position, slot, slot])
        singles.append(batch)
    del single
    one_plan = [(batch, torch.cat([x_main, x_ride[2 * i:2 * i + 2]])) for i, batch in enumerate(singles)]
    many_plan = [(together, torch.cat([x_main, x_ride]))] + [(alone, x_main)] * (columns - 1)
    one_ms: list[float] = []
    many_ms: list[float] = []
    burst_ms: list[float] = []
    cache: dict[str, list[torch.Tensor]] = {}
    logits: dict[str, torch.Tensor] = {}
    for cycle in range(cycles + 2):  # the first two pairs warm up
        for kind in (("one", "many") if cycle % 2 else ("many", "one")):
            times, first = _steps(model, one_plan if kind == "one" else many_plan)
            if cycle == 0:
                cache[kind], logits[kind] = _cache_bytes(riding), first
            if cycle >= 2:
                (one_ms if kind == "one" else many_ms).append(statistics.fmean(times))
                if kind == "many":
                    burst_ms.append(times[0])
    same = torch.equal(logits["one"], logits["many"]) and all(
        torch.equal(a, b) for a, b in zip(cache["one"], cache["many"], strict=True))
    one, many = statistics.median(one_ms), statistics.median(many_ms)
    return {"one_ms": round(one, 3), "many_ms": round(many, 3), "ratio": round(many / one, 3),
            "saved_ms": round(one - many, 3), "burst_ms": round(statistics.median(burst_ms), 3),
            "burst_max_ms": round(max(burst_ms), 3),
            "faster_cycles": f"{sum(m < o for m, o in zip(many_ms, one_ms))}/{cycles}", "same_bits": same}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_cpu_arguments(parser)
    parser.add_argument("--columns", default="2,4,8", help="k: the columns a riding step takes")
    parser.add_argument("--cycles", type=int, default=40, help="pairs of k-step cycles at each k")
    parser.add_argument("--position", type=int, default=1400, help="the playing window's position")
    parser.add_argument("--riding", type=int, default=300, help="the riding window's first position")
    parser.add_argument("--kernel", choices=("int8", "int8a8"), default="int8a8",
                        help="the products' activations: int8 at 16 bits, int8a8 at 8")
    args = parser.parse_args(argv)
    apply_cpu_arguments(args, "bench.ride_columns")
    weights = Weights()
    model = weights.with_activation_bits(8 if args.kernel == "int8a8" else 16)
    generator = torch.Generator().manual_seed(1)
    window = Window(args.position + 100, generator, kv_bits=4)
    riding = Window(args.riding + 100, generator, kv_bits=4)
    cpu = this_cpu()
    print(f"CPU: {cpu.model} ({isa_label(args.emulate)}), {torch.get_num_threads()} threads, {args.kernel}+kv4; one stream at "
          f"{args.position}, its next window riding from {args.riding}")
    print("k   one col/step ms   k cols/k steps ms   ratio  saved ms  burst ms (max)   faster in  same bits")
    results = {}
    for columns in [int(k) for k in args.columns.split(",")]:
        r = compare(model, window, args.position, riding, args.riding, columns, args.cycles)
        print(f"{columns:<3} {r['one_ms']:15.3f}   {r['many_ms']:17.3f}   {r['ratio']:5.3f}  {r['saved_ms']:8.3f}"
              f"  {r['burst_ms']:7.3f} ({r['burst_max_ms']:6.3f})  {r['faster_cycles']:>9}  {r['same_bits']}")
        results[str(columns)] = r
    summary = {"cpu": cpu.model, "isa": isa_label(args.emulate), "threads": torch.get_num_threads(), "kernel": args.kernel, "position": args.position,
               "riding": args.riding, "columns": results}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
