"""Benchmark: riffd's int8 and int4 matrix-vector kernels over one decode step's matrices, against
a plain read of as many bytes in the same run.

A decode step multiplies a few activation rows (2 with guidance) by every projection of the
decoder once, so its floor is the time to read those bytes. For musicgen-small's shapes (24
layers of qkv, out, cross q, cross out, fc1, fc2, and the lm heads) this times one pass over all
of them per format and row count, and prints each as GB/s of weights, as a share of the read
rate, and int4's speed-up over int8 (2x would be the bandwidth ratio; the int4 bytes include a
bfloat16 scale per group). Random codes: the timing does not depend on the values. The machine is
shared: best of `--repeats`. Prints a table, then one JSON object as the last line.

    python -m bench.native_matvec [--rows 1,2,4] [--layers 24] [--group 32] [--repeats 7] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from daemon.native import int4_matvec, int8_matvec, isa, library  # noqa: E402
from daemon.native.branches import cpu_name  # noqa: E402

HIDDEN, FFN, HEAD_ROWS = 1024, 4096, 4 * 2048  # musicgen-small
LAYER_SHAPES = [(3 * HIDDEN, HIDDEN), (HIDDEN, HIDDEN), (HIDDEN, HIDDEN), (HIDDEN, HIDDEN), (FFN, HIDDEN), (HIDDEN, FFN)]


def read_gb_s(total_bytes: int, repeats: int) -> float:
    """Best-of-N rate of summing a float32 buffer of `total_bytes` (what the kernels' weights weigh)."""
    buffer = torch.ones(total_bytes // 4, dtype=torch.float32)
    buffer.sum()
    best = min(_timed(buffer.sum) for _ in range(repeats))
    return total_bytes / best / 1e9


def _timed(work) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def pass_time_s(matrices: list, multiply, rows: int, repeats: int) -> float:
    inputs = {m.cols: torch.randn(rows, m.cols) for m in matrices}

    def one_pass() -> None:
        for m in matrices:
            multiply(inputs[m.cols], m)

    one_pass()
    return min(_timed(one_pass) for _ in range(repeats))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1,2,4", help="activation rows per product (2: one guided stream)")
    parser.add_argument("--layers", type=int, default=24)
    parser.add_argument("--group", type=int, default=32, help="int4 inputs per scale")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    library()
    generator = torch.Generator().manual_seed(0)
    shapes = LAYER_SHAPES * args.layers + [(HEAD_ROWS, HIDDEN)]
    int8, int4 = [], []
    for rows, cols in shapes:
        codes = torch.randint(-127, 128, (rows, cols), dtype=torch.int8, generator=generator)
        int8.append(int8_matvec.pack(codes, torch.rand(rows, generator=generator) * 0.01))
        nibbles = torch.randint(0, 16, (rows, cols), dtype=torch.uint8, generator=generator)
        scales = (torch.rand(rows, cols // args.group, generator=generator) * 0.01).to(torch.bfloat16)
        int4.append(int4_matvec.pack(int4_matvec.Int4Weights(nibbles, scales, args.group)))
    int8_bytes, int4_bytes = sum(m.nbytes for m in int8), sum(m.nbytes for m in int4)
    bandwidth = read_gb_s(int8_bytes, args.repeats)
    tiles = int8_matvec.tile_rows()
    print(f"{cpu_name()}, {isa()} kernels{f' (int8 from {tiles} rows on the AMX tile unit)' if tiles else ''}, "
          f"{args.threads} threads; "
          f"int8 {int8_bytes / 2**20:.0f} MB, int4 {int4_bytes / 2**20:.0f} MB a pass")
    print(f"plain read: {bandwidth:.1f} GB/s")
    print(f"{'rows':>4} | {'int8 ms':>8} {'GB/s':>6} {'of read':>7} | {'int4 ms':>8} {'GB/s':>6} {'of read':>7} | int4 speed-up")
    results = []
    for rows in (int(r) for r in args.rows.split(",")):
        t8 = pass_time_s(int8, int8_matvec.matvec, rows, args.repeats)
        t4 = pass_time_s(int4, int4_matvec.matvec, rows, args.repeats)
        bandwidth = max(bandwidth, read_gb_s(int8_bytes, args.repeats))  # the best read seen in this run
        g8, g4 = int8_bytes / t8 / 1e9, int4_bytes / t4 / 1e9
        results.append({"rows": rows, "int8_ms": round(t8 * 1e3, 2), "int8_gb_s": round(g8, 2),
                        "int4_ms": round(t4 * 1e3, 2), "int4_gb_s": round(g4, 2), "int4_speedup": round(t8 / t4, 3)})
        print(f"{rows:>4} | {t8 * 1e3:8.1f} {g8:6.1f} {g8 / bandwidth:7.0%} | {t4 * 1e3:8.1f} {g4:6.1f} "
              f"{g4 / bandwidth:7.0%} | {t8 / t4:.2f}x")
    for result in results:
        result["int8_of_read"] = round(result["int8_gb_s"] / bandwidth, 3)
        result["int4_of_read"] = round(result["int4_gb_s"] / bandwidth, 3)
    summary = {"cpu": cpu_name(), "isa": isa(), "int8_tile_rows": tiles, "threads": args.threads,
               "read_gb_s": round(bandwidth, 2), "int4_group": args.group, "int8_mb": round(int8_bytes / 2**20, 1),
               "int4_mb": round(int4_bytes / 2**20, 1), "results": results}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
