"""Benchmark: a late decode step's +kv4 self-attention against a plain read of its bytes, by where they come from.

A decode step at window position P reads every (layer, row, head)'s keys and values so far: 77.7 MB
for one guided musicgen-small stream at 1424 (+kv4). Whether that is the kernel's arithmetic or
the memory shows only by where the bytes come from, so this builds bench/attention_reads_harness.c
with the library's sources and flags (each x86 branch this CPU runs, or `--branches`) and times
riffd_attend_kv4 over a late step's 768 tasks at `--position`, split over `--threads` as the
step's chunks are, three ways: one layer's tasks again and again (the cores' own caches), every
layer's (the step's cache alone, wherever it fits), and every layer's after the threads read
`--stream-mb` of other memory (363: a step's int8 weights, which pass between two steps' reads of a
layer's cache). Each against a plain read of the very same bytes in the same conditions, in the same
run: "of read" is the read's time over the kernel's. Prints a table, then one JSON object as the last line.

    python -m bench.attention_reads [--threads 2] [--repeats 5] [--position 1424] [--stream-mb 363] [--branches avx2,...]
        [--cflags FLAGS]
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

from bench.native_int8 import build_harness, harness_branches  # noqa: E402
from daemon.native.branches import cpu_name  # noqa: E402


def run_branch(name: str, cflags: str, threads: int, repeats: int, position: int, stream_mb: int,
               folder: Path) -> list[dict]:
    """The harness built with `cflags` (a branch's), its JSON lines."""
    binary = build_harness(ROOT / "bench" / "attention_reads_harness.c", name, cflags, folder)
    done = subprocess.run([str(binary), str(threads), str(repeats), str(position), str(stream_mb)],
                          capture_output=True, text=True, check=True, timeout=1800)
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeats", type=int, default=5, help="passes per case (best of)")
    parser.add_argument("--position", type=int, default=1424, help="the step's window position (1..1500)")
    parser.add_argument("--stream-mb", type=int, default=363, help="memory read between passes (a step's weights)")
    parser.add_argument("--branches", default="", help="isa names to run (default: every one this CPU runs)")
    parser.add_argument("--cflags", default="", help="more compiler flags, e.g. -DATTENTION_PREFETCH_L2_BYTES=8192")
    args = parser.parse_args(argv)
    if not 1 <= args.position <= 1500:
        parser.error("--position must be 1..1500 (a 30 s window's slots)")
    if not 1 <= args.threads <= 16 or args.repeats < 1 or args.stream_mb < 1:
        parser.error("--threads must be 1..16, --repeats and --stream-mb at least 1")
    branches = harness_branches(args.branches)
    if not branches:
        raise SystemExit("no x86 branch of the kernels runs on this CPU (or none of --branches)")
    print(f"CPU: {cpu_name()}, {args.threads} threads; 768 tasks (24 layers x 2 rows x 16 heads) at position "
          f"{args.position}, +kv4; {args.stream_mb} MB read between passes 'after the weights'")
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as folder:
        for branch in branches:
            lines = run_branch(branch.isa, f"{branch.cflags} {args.cflags}".strip(), args.threads, args.repeats, args.position, args.stream_mb,
                               Path(folder))
            results[branch.isa] = {"cflags": branch.cflags, "cases": lines}
            print(f"\n{branch.isa} (RIFFD_NATIVE_CFLAGS={branch.cflags!r})")
            print(f"  {'case':>18} {'MB':>6} {'kernel ms':>9} {'GB/s':>6} {'read ms':>8} {'GB/s':>6} {'of read':>8}")
            for line in lines:
                print(f"  {line['case']:>18} {line['mb']:6.1f} {line['kernel_ms']:9.3f} {line['kernel_gb_s']:6.1f} "
                      f"{line['read_ms']:8.3f} {line['read_gb_s']:6.1f} {100 * line['share_of_read']:7.0f}%")
    summary = {"cpu": cpu_name(), "threads": args.threads, "position": args.position, "stream_mb": args.stream_mb,
               "branches": results}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
