"""Benchmark: the native decode step as this checkout builds it against another revision's build, one process.

A kernel change's speed on a shared 2-core machine only shows in one process with the two builds
taking turns step by step (a busy minute then hits both alike; separate runs minutes apart differ
by more than the change). This builds daemon/native at `--base` (a git revision, default `main`;
`--base-cflags` adds compiler flags, e.g. `-DPREFETCH_L2_BYTES=8192`) into a temporary folder,
loads it beside this checkout's library (`--cflags`: RIFFD_NATIVE_CFLAGS for it), and steps one
guided stream (2 rows, +kv4 caches as the int8a8+kv4 engine has them) of musicgen-small-shaped
random weights (bench.native_step's, in huge pages, shared by both builds) at each of
`--positions`, the two builds in turn, which goes first alternating. Per position: the median wall
and CPU (all threads) ms of each, their ratio, in how many adjacent pairs the checkout's step was
the faster, and whether the two gave the same logits bits (from the same inputs and caches). A
baseline from before the +kv4 cache's float16 scales (no `riffd_kv4_half_scales`) steps its own copy
of the caches with float32 scales of the same values (and the checkout its own copy too, made
alike): the bits then differ by the step's own scales' rounding.
Prints a table, then one JSON object as the last line.

`--riding P` adds a next window's two rows at position P to every step (a long job's late steps,
handoff.py): a build with `riffd_step_rows_out` steps them as keys-only rows (logits of the playing
window's rows only, as the daemon asks), an older build computes every row. The same bits then
means the playing rows' logits; both builds write the same cache slots. The riding rows' cache is laid
out as the daemon's next window's is while its context rides (handoff.RIDE_STAGE_POSITIONS: the stage
holding position P, a head's slots that many positions + the int8 head apart); `--riding-positions N`
lays out this checkout's arm's for N positions, `--base-riding-positions N` the baseline's (the
window-sized cache, e.g. 1500, as the daemon rode before its stages: each riding task's few hundred
slots then short streams a window apart, 0.27-0.37 ms a step more than back to back at 1400 + 300,
Zen 4, 2 threads).

    python -m bench.step_ab [--base main] [--base-cflags FLAGS] [--cflags FLAGS] [--positions 100,1400]
        [--steps 60] [--kernel int8a8] [--threads 2] [--riding 300 [--riding-positions N] [--base-riding-positions N]]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import daemon  # noqa: E402, F401  (before torch: see daemon/__init__.py)
import torch  # noqa: E402

from bench.isa import add_cpu_arguments, apply_cpu_arguments  # noqa: E402
from bench.native_step import Weights, Window  # noqa: E402
from bench.step_pairs import alternate  # noqa: E402
from daemon import native  # noqa: E402
from daemon.config import environment_c_compiler  # noqa: E402
from daemon.cpu import this_cpu  # noqa: E402
from daemon.models.musicgen import handoff, kv_cache  # noqa: E402
from daemon.native.decoder_step import bind  # noqa: E402
from daemon.native.decoder_step import functions as decoder_functions  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
KINDS = ("base", "new")


def base_library(revision: str, cflags: list[str], folder: Path) -> ctypes.CDLL:
    """daemon/native as of `revision`, built into `folder` with this machine's flags plus `cflags`."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", revision, "daemon/native"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    sources = sorted(str(path) for path in (folder / "daemon" / "native").glob("*.c"))
    target = folder / "libriffd-base.so"
    flags = native.build_flags(os.uname().machine, native._cpu_flags())
    subprocess.run([environment_c_compiler(), *flags, *cflags, *sources, "-o", str(target)], check=True)
    return bind(ctypes.CDLL(str(target)))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_cpu_arguments(parser, emulate=False)
    parser.add_argument("--base", default="main", help="the git revision to build the baseline from")
    parser.add_argument("--base-cflags", default="", help="extra compiler flags for the baseline's build")
    parser.add_argument("--cflags", default=None, help="RIFFD_NATIVE_CFLAGS for this checkout's build")
    parser.add_argument("--positions", default="100,1400")
    parser.add_argument("--steps", type=int, default=60, help="pairs of steps at each position")
    parser.add_argument("--kernel", choices=("int8", "int8a8"), default="int8a8")
    parser.add_argument("--riding", type=int, default=None,
                        help="a next window's 2 rows riding each step at this position (keys-only where a build can)")
    parser.add_argument("--riding-positions", type=int, default=None,
                        help="with --riding: this checkout's riding rows in a cache laid out for this many positions "
                             "(default: the daemon's riding stage, handoff.RIDE_STAGE_POSITIONS)")
    parser.add_argument("--base-riding-positions", type=int, default=None,
                        help="with --riding: the baseline's riding cache's positions (default as --riding-positions)")
    args = parser.parse_args(argv)
    for given in (args.riding_positions, args.base_riding_positions):
        if given is not None and (args.riding is None or args.riding >= given):
            parser.error("--riding-positions / --base-riding-positions need --riding below them")
    apply_cpu_arguments(args, "bench.step_ab")
    if args.cflags is not None:
        os.environ["RIFFD_NATIVE_CFLAGS"] = args.cflags
    bits = 8 if args.kernel == "int8a8" else 16
    weights = Weights()
    with tempfile.TemporaryDirectory(prefix="riffd-step-ab-") as folder:
        base = base_library(args.base, shlex.split(args.base_cflags), Path(folder))
        models = {"base": weights.with_activation_bits(bits, library=base), "new": weights.with_activation_bits(bits)}
    keys_only = {"base": hasattr(base, "riffd_step_rows_out"), "new": hasattr(decoder_functions(), "riffd_step_rows_out")}
    float32_scales = not hasattr(base, "riffd_kv4_half_scales")  # a build from before float16 +kv4 scales
    generator = torch.Generator().manual_seed(1)
    positions = [int(p) for p in args.positions.split(",")]
    cpu = this_cpu()
    print(f"CPU: {cpu.model} ({cpu.isa}), {torch.get_num_threads()} threads, {args.kernel}+kv4, one stream (2 rows); "
          f"base {args.base} {args.base_cflags!r} against this checkout {os.environ.get('RIFFD_NATIVE_CFLAGS', '')!r}")
    riding_positions: dict[str, int] = {}
    if args.riding is not None:
        window_positions = max(positions) + 100
        staged = window_positions
        if handoff.RIDE_STAGE_POSITIONS > 0:
            staged = handoff.stage_positions(args.riding + 1, handoff.RIDE_STAGE_POSITIONS, window_positions,
                                             kv_cache.int8_head(window_positions))
        new_positions = args.riding_positions or staged
        riding_positions = {"base": args.base_riding_positions or new_positions, "new": new_positions}
        print(f"riding: a next window's 2 rows at position {args.riding} in every step; keys-only in "
              f"{', '.join(kind for kind in KINDS if keys_only[kind]) or 'neither build'}; their cache laid out "
              f"for {riding_positions['base']} positions (base), {riding_positions['new']} (this checkout)")
    if float32_scales:
        print("base: float32 +kv4 scales (its own copy of the caches, the same values)")
    print("position   base ms (cpu)    new ms (cpu)     new/base  new faster in  same bits")
    results = {}
    for position in positions:
        window = Window(max(positions) + 100, generator, kv_bits=4)
        riding = None if args.riding is None else (Window(riding_positions["base"], generator, kv_bits=4), args.riding)
        own = None
        if float32_scales:
            own = {kind: (window.copied(float32_scales=kind == "base"),
                          riding[0].copied(float32_scales=kind == "base") if riding else None) for kind in KINDS}
        if riding is not None and riding_positions["new"] != riding_positions["base"]:
            # the same slot values would need a move between layouts; random ones of the same shape do
            own = own or {kind: (window, riding[0]) for kind in KINDS}
            own["new"] = (own["new"][0], Window(riding_positions["new"], generator, kv_bits=4))
        result = alternate(models, window, position, args.steps, riding, keys_only, own)
        old, new = result["base"], result["new"]
        assert isinstance(old, dict) and isinstance(new, dict)
        print(f"{position:8d}   {old['ms']:6.2f} ({old['cpu_ms']:5.2f})   {new['ms']:6.2f} ({new['cpu_ms']:5.2f})"
              f"   {result['ratio']:6.3f}   {result['faster_pairs']:>9} pairs  {result['same_bits']}")
        results[str(position)] = result
    summary = {"cpu": cpu.model, "isa": cpu.isa, "threads": torch.get_num_threads(), "kernel": args.kernel,
               "base": args.base, "base_cflags": args.base_cflags,
               "cflags": os.environ.get("RIFFD_NATIVE_CFLAGS", ""), "riding": args.riding,
               "riding_positions": riding_positions or None,
               "keys_only": keys_only if args.riding is not None else None, "positions": results}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
