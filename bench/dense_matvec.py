"""Benchmark: float32 and bfloat16 decode-step products, PyTorch's library calls against riffd's kernel,
each against a plain read of as many bytes in the same run.

A decode step multiplies 1 or 2 activation rows (2 with guidance) by every projection once, so its
floor is the time to read the weights. For musicgen-small's shapes (`bench.native_matvec`'s) this
times one pass over them per variant and prints GB/s of weights and the share of the read rate:

- float32 `F.linear` (what the float32 mode and transformers run: MKL's sgemm, weights `[n, k]`);
- float32 `x @ W_t` with the weights stored transposed `[k, n]` (sgemm's other layout; not bit-equal
  to `F.linear`, so not for the exact float32 mode);
- float32 riffd (`f32_matmul.c`);
- bfloat16 `F.linear` (oneDNN's matmul) and bfloat16 riffd (the bfloat16 mode's decode steps).

`--emulate avx2` reruns it as an AVX2-only CPU would (bench/isa.py: MKL, oneDNN and riffd's
kernels capped). The machine is shared: best of `--repeats`. Prints a table, then one JSON object last.

    python -m bench.dense_matvec [--rows 1,2] [--layers 8] [--repeats 5] [--threads N] [--emulate avx2]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import daemon  # noqa: E402,F401  (before torch: riffd's OpenMP setting, as in the daemon)
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from bench.isa import add_cpu_arguments, apply_cpu_arguments, isa_label  # noqa: E402
from bench.native_matvec import HEAD_ROWS, HIDDEN, LAYER_SHAPES, _timed, read_gb_s  # noqa: E402
from daemon.cpu import this_cpu  # noqa: E402
from daemon.native import f32_matmul, isa  # noqa: E402

Multiply = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def variants() -> dict[str, tuple[torch.dtype, bool, Multiply]]:
    """name -> (weight dtype, weights stored transposed, x times the stored weight)."""
    return {
        "float32 F.linear": (torch.float32, False, F.linear),
        "float32 x @ W_t": (torch.float32, True, torch.matmul),
        "float32 riffd": (torch.float32, False, f32_matmul.matmul),
        "bfloat16 F.linear": (torch.bfloat16, False, F.linear),
        "bfloat16 riffd": (torch.bfloat16, False, lambda x, w: f32_matmul.matmul(x, w).to(torch.bfloat16)),
    }


def pass_time_s(weights: list[torch.Tensor], transposed: bool, multiply: Multiply, rows: int, dtype: torch.dtype,
                repeats: int) -> float:
    """Best-of-N time of multiplying `rows` activation rows by every matrix once."""
    inputs = {w.shape[0 if transposed else 1]: torch.randn(rows, w.shape[0 if transposed else 1]).to(dtype)
              for w in weights}

    def one_pass() -> None:
        for w in weights:
            multiply(inputs[w.shape[0 if transposed else 1]], w)

    one_pass()
    return min(_timed(one_pass) for _ in range(repeats))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1,2", help="activation rows per product (2: one guided stream)")
    parser.add_argument("--layers", type=int, default=8, help="musicgen-small has 24; 8 (480 MB of float32) are "
                        "15x the L3 cache already, and keep the five copies this bench holds small")
    parser.add_argument("--repeats", type=int, default=5)
    add_cpu_arguments(parser)
    args = parser.parse_args(argv)
    apply_cpu_arguments(args, "bench.dense_matvec")
    if f32_matmul.max_rows() == 0:
        raise SystemExit("riffd's kernels cannot run here (python -c 'import daemon.native as n; n.kernels()' says why)")
    generator = torch.Generator().manual_seed(0)
    shapes = LAYER_SHAPES * args.layers + [(HEAD_ROWS, HIDDEN)]
    base = [torch.randn(rows, cols, generator=generator) * 0.02 for rows, cols in shapes]
    weights = {False: {torch.float32: base, torch.bfloat16: [w.to(torch.bfloat16) for w in base]}}
    weights[True] = {dtype: [w.t().contiguous() for w in found] for dtype, found in weights[False].items()}
    float32_bytes = sum(w.numel() * 4 for w in base)
    bandwidth = read_gb_s(float32_bytes, args.repeats)
    label = f"{this_cpu().describe()}, {isa_label(args.emulate)}, riffd kernels {isa()}, {torch.get_num_threads()} threads"
    print(f"{label}; float32 {float32_bytes / 2**20:.0f} MB a pass")
    results: list[dict[str, Any]] = []
    for rows in (int(r) for r in args.rows.split(",")):
        for name, (dtype, transposed, multiply) in variants().items():
            seconds = pass_time_s(weights[transposed][dtype], transposed, multiply, rows, dtype, args.repeats)
            bandwidth = max(bandwidth, read_gb_s(float32_bytes, args.repeats))  # the best read seen in this run
            weight_bytes = float32_bytes * (2 if dtype == torch.bfloat16 else 4) // 4
            results.append({"rows": rows, "variant": name, "ms": round(seconds * 1e3, 2),
                            "gb_s": round(weight_bytes / seconds / 1e9, 2)})
            print(f"{rows} rows  {name:>18}: {seconds * 1e3:7.1f} ms {weight_bytes / seconds / 1e9:6.1f} GB/s", flush=True)
    for result in results:
        result["of_read"] = round(result["gb_s"] / bandwidth, 3)
    by_key = {(r["rows"], r["variant"]): r for r in results}
    speedups = {f"{rows} rows": {
        "float32 riffd vs F.linear": round(by_key[rows, "float32 F.linear"]["ms"] / by_key[rows, "float32 riffd"]["ms"], 2),
        "bfloat16 riffd vs F.linear": round(by_key[rows, "bfloat16 F.linear"]["ms"] / by_key[rows, "bfloat16 riffd"]["ms"],
                                            2)} for rows in sorted({r["rows"] for r in results})}
    print(f"plain read: {bandwidth:.1f} GB/s (best in this run); shares of it:")
    for result in results:
        print(f"{result['rows']} rows  {result['variant']:>18}: {result['of_read']:5.0%}")
    summary = {"cpu": this_cpu().describe(), "isa": isa_label(args.emulate), "kernels": isa(),
               "threads": torch.get_num_threads(), "read_gb_s": round(bandwidth, 2),
               "float32_mb": round(float32_bytes / 2**20, 1), "speedups": speedups, "results": results}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
