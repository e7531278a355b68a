"""Benchmark: riffd's int8 matvecs (int8: 16-bit activations; int8a8: 8-bit) against a plain read of the same buffers, for every x86 branch here.

For each simd.h branch this CPU runs (daemon/native/branches.py: AVX-512 VNNI, AVX-VNNI or its
stand-in, AVX2 without VNNI), builds bench/native_int8_harness.c with the library's sources and
that branch's flags, and runs it: musicgen-small's decoder matrices (344 MB of int8, one decode
step's weights) multiplied by 1 to 16 activation rows (a decode step's) or hundreds (`--rows 1202`: a long-form
window's prefill) by each kernel (`--kernels`), against the same packed buffers read with
no arithmetic, split the same way over the same threads, interleaved and best of `--repeats`.
A branch built with another's flags on this CPU (the AVX2 build on an AVX-512 machine) is only
indicative of the CPUs that branch is for. Prints a table, then one JSON object as the last line.

    python -m bench.native_int8 [--threads 2] [--repeats 5] [--rows 1,2,4,8,16] [--branches avx2,...]
        [--kernels int8,int8a8]

"of read" is the kernel's share of its bandwidth floor: the plain read's time (the faster of with and
without prefetch) over the kernel's.
"GMAC/s" is int8 products a second (rows x weights / time): at many rows the
kernels are bound by their product instructions, not the read (AVX-512 VNNI's vpdpbusd makes 64 a cycle
per core, AVX2's vpmaddwd 16 per instruction).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from daemon.native import FLAGS, SOURCE_DIR  # noqa: E402
from daemon.native.branches import Branch, cpu_name, runnable_here  # noqa: E402


def harness_branches(names: str) -> list[Branch]:
    """The x86 branches this CPU runs natively (not emulated), those in `names` (comma-separated) if any."""
    wanted = set(filter(None, names.split(",")))
    return [b for b in runnable_here() if "emulated" not in b.isa and (not wanted or b.isa in wanted)]


def build_harness(harness: Path, isa: str, cflags: str, folder: Path) -> Path:
    """`harness` (a C file of bench/) built into `folder` with the library's sources and flags, a branch's
    `cflags` after them, as a program; its path."""
    binary = folder / f"{harness.stem}-{isa.replace('(', '-').replace(')', '')}"
    sources = sorted(str(path) for path in SOURCE_DIR.glob("*.c"))
    flags = [flag for flag in FLAGS if flag not in ("-shared", "-fPIC")] + cflags.split()
    subprocess.run([os.environ.get("CC", "cc"), *flags, "-I", str(SOURCE_DIR), str(harness), *sources, "-o",
                    str(binary), "-lm"], check=True)
    return binary


def run_branch(isa: str, cflags: str, rows: list[int], repeats: int, threads: int, folder: Path,
               kernels: str = "int8,int8a8") -> list[dict]:
    binary = build_harness(ROOT / "bench" / "native_int8_harness.c", isa, cflags, folder)
    env = {**os.environ, "RIFFD_THREADS": str(threads), "RIFFD_KERNELS": kernels}
    done = subprocess.run([str(binary), str(repeats), *map(str, rows)], env=env, capture_output=True, text=True,
                          check=True, timeout=1800)
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rows", default="1,2,4,8,16")
    parser.add_argument("--branches", default="", help="isa names to run (default: every one this CPU runs)")
    parser.add_argument("--kernels", default="int8,int8a8", help="int8 (16-bit activations), int8a8 (8-bit)")
    args = parser.parse_args(argv)
    rows = [int(r) for r in args.rows.split(",")]
    branches = harness_branches(args.branches)
    print(f"CPU: {cpu_name()}, {args.threads} threads")
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as folder:
        for branch in branches:
            lines = run_branch(branch.isa, branch.cflags, rows, args.repeats, args.threads, Path(folder), args.kernels)
            read = lines[0]
            results[branch.isa] = {"cflags": branch.cflags, "read_gb_s": read["read_gb_s"],
                                   "read_prefetch_gb_s": read["read_prefetch_gb_s"]}
            for line in lines[1:]:
                results[branch.isa].setdefault(line["kernel"], {})[line["rows"]] = {
                    "gb_s": line["kernel_gb_s"], "ms": line["kernel_ms"], "cpu_ms": line["kernel_cpu_ms"],
                    "gmac_s": round(line["rows"] * read["mb"] / line["kernel_ms"], 1),
                    "share_of_read": line["share_of_read"]}
            print(f"\n{branch.isa} (RIFFD_NATIVE_CFLAGS={branch.cflags!r}): plain read {read['read_gb_s']:.1f} GB/s, "
                  f"with prefetch {read['read_prefetch_gb_s']:.1f} GB/s, {read['mb']:.0f} MB")
            print(f"  {'kernel':>7} {'rows':>4} {'ms':>8} {'cpu ms':>8} {'GB/s':>7} {'of read':>8} {'GMAC/s':>7}")
            for line in lines[1:]:
                print(f"  {line['kernel']:>7} {line['rows']:>4} {line['kernel_ms']:>8.1f} {line['kernel_cpu_ms']:>8.1f} "
                      f"{line['kernel_gb_s']:>7.1f} {100 * line['share_of_read']:>7.0f}% "
                      f"{line['rows'] * read['mb'] / line['kernel_ms']:>7.1f}")
    summary = {"cpu": cpu_name(), "threads": args.threads, "branches": results}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
