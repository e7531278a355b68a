"""Benchmark: riffd's batched native int8 decode step (daemon/native/decoder_step.c) on musicgen-small's shapes.

Two questions, one run, random int8 weights and caches of musicgen-small's shapes (24 layers of
1024, 16 heads of 64, ffn 4096, 4 x 2048 logits; the step's time does not depend on the values):

- late in the window: one guided stream (2 rows) stepped at each of `--positions` with the first of
  `--kernels`; its step time against the first position's (late/early), beside what the bytes alone
  allow: a step reads the int8 weights once plus every cached key and value so far (int8, or 4-bit
  codes two a byte for the +kv4 engines, + a scale per vector), at the memory-read bandwidth measured
  in the same run; for each of `--kv-bits` (8, 4), taking turns at each position;
- batching: `--streams` guided streams (2 rows each, at different positions of their own windows)
  sharing each step, their aggregate stream-steps per second against one stream alone, for each of
  `--kernels` over the same weights (int8: activations at 16 bits; int8a8: at 8 bits, int8 lm heads
  as that mode has them), taking turns at each batch size so a busy moment hits both alike. Beside
  the wall time, the process's CPU time per step (all threads): the kernels' compute cost, which
  descheduling on a shared machine does not inflate.

Medians of `--steps` steps. Prints a table, then one JSON object as the last line. `--profile`
builds the kernels with -DRIFFD_STEP_PROFILE and adds where each batched step's time went inside
riffd_step_rows (mean ms a step: norms, projections, self-attention with the cache writes,
cross-attention, GELU, residuals); the clock calls cost a little, so compare profiled runs only with
each other.

    python -m bench.native_step [--threads 2] [--positions 16,500,1000,1500] [--streams 1,2,4,8]
        [--kernels int8,int8a8] [--kv-bits 8,4] [--profile]
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from bench.isa import add_cpu_arguments, apply_cpu_arguments  # noqa: E402
from daemon.models.musicgen import kv_cache  # noqa: E402
from daemon.native import isa, kernels  # noqa: E402
from daemon.native.branches import cpu_name  # noqa: E402
from daemon.native.decoder_step import Int8Struct, LayerWeightsStruct, NativeModel, NormStruct, RowCacheStruct, bind_row  # noqa: E402
from daemon.native.huge_pages import huge_copy  # noqa: E402
from daemon.native.int8_matvec import PackedInt8, pack  # noqa: E402

LAYERS, HIDDEN, HEADS, FFN, LOGITS, TEXT_TOKENS = 24, 1024, 16, 4096, 4 * 2048, 12
HEAD_DIM = HIDDEN // HEADS


def random_int8(rows: int, cols: int, generator: torch.Generator, huge_pages: bool = True) -> PackedInt8:
    codes = torch.randint(-127, 128, (rows, cols), dtype=torch.int8, generator=generator)
    return pack(codes, torch.full((rows,), 0.5 / math.sqrt(cols) / 64), huge_pages=huge_pages)


class Weights:
    """musicgen-small-shaped int8 weights and the NativeModel over them (the tensors live here)."""

    def __init__(self, huge_pages: bool = True) -> None:
        """`huge_pages` False: the packed bytes in ordinary pages (int8_matvec.pack)."""
        generator = torch.Generator().manual_seed(0)
        self.ones, self.zeros = torch.ones(HIDDEN), torch.zeros(HIDDEN)
        norm = NormStruct.of(self.ones, self.zeros)
        self.packed: list[PackedInt8] = []
        layers = []
        for _ in range(LAYERS):
            parts = [random_int8(rows, cols, generator, huge_pages) for rows, cols in
                     ((3 * HIDDEN, HIDDEN), (HIDDEN, HIDDEN), (HIDDEN, HIDDEN), (HIDDEN, HIDDEN), (FFN, HIDDEN),
                      (HIDDEN, FFN))]
            self.packed += parts
            qkv, out, cross_q, cross_out, fc1, fc2 = map(Int8Struct.of, parts)
            layers.append(LayerWeightsStruct(norm, qkv, out, norm, cross_q, cross_out, norm, fc1, fc2))
        self.packed.append(random_int8(LOGITS, HIDDEN, generator, huge_pages))
        self.model = NativeModel(layers, heads=HEADS, head_dim=HEAD_DIM, eps=1e-5, final_norm=norm,
                                 lm_heads=Int8Struct.of(self.packed[-1]))
        self.norm = norm

    def with_activation_bits(self, bits: int, library: ctypes.CDLL | None = None) -> NativeModel:
        """A model over the same weights whose layers quantise activations to `bits` (the lm heads stay
        at 16, as in the int8a8 mode); `library`: NativeModel's (another build of the kernels)."""
        if bits == 16 and library is None:
            return self.model
        parts = [Int8Struct.of(dataclasses.replace(p, activation_bits=bits)) for p in self.packed[:-1]]
        layers = [LayerWeightsStruct(self.norm, *parts[6 * i:6 * i + 2], self.norm, *parts[6 * i + 2:6 * i + 4],
                                     self.norm, *parts[6 * i + 4:6 * i + 6]) for i in range(LAYERS)]
        return NativeModel(layers, heads=HEADS, head_dim=HEAD_DIM, eps=1e-5, final_norm=self.norm,
                           lm_heads=Int8Struct.of(self.packed[-1]), library=library)

    @property
    def nbytes(self) -> int:
        return sum(p.nbytes for p in self.packed)


class Window:
    """One guided stream's caches (2 rows), filled with random slots: int8 (`kv_bits` 8) or the packed
    4-bit layout of the +kv4 engines (4: two codes a byte)."""

    def __init__(self, max_positions: int, generator: torch.Generator, kv_bits: int = 8) -> None:
        # kv_bits 4: kv_cache.py's layout, an int8 head of the first positions and 4-bit slots after
        head = kv_cache.int8_head(max_positions) if kv_bits == 4 else 0
        rows = max_positions + head
        shape = (2, HEADS, rows, HEAD_DIM * kv_bits // 8)
        low, high, dtype = (-127, 128, torch.int8) if kv_bits == 8 else (0, 256, torch.uint8)
        self.keys = [torch.randint(low, high, shape, dtype=dtype, generator=generator) for _ in range(LAYERS)]
        self.values = [torch.randint(low, high, shape, dtype=dtype, generator=generator) for _ in range(LAYERS)]
        self.int8_positions = head
        self.key_scales = [self._scales(max_positions, generator) for _ in range(LAYERS)]
        self.value_scales = [self._scales(max_positions, generator) for _ in range(LAYERS)]
        cross = (2, HEADS, TEXT_TOKENS, HEAD_DIM)
        self.cross_keys = [torch.randn(cross, generator=generator) for _ in range(LAYERS)]
        self.cross_values = [torch.randn(cross, generator=generator) for _ in range(LAYERS)]
        self.rows = [bind_row(self.keys, self.values, self.key_scales, self.value_scales, self.cross_keys,
                              self.cross_values, None, row, int8_positions=head) for row in range(2)]

    def _scales(self, max_positions: int, generator: torch.Generator) -> torch.Tensor:
        """Random scales in the layout's format: float32, or the 4-bit layout's (kv_cache.py: the int8
        head's float32 two float16 entries each, then float16)."""
        scales = torch.rand((2, HEADS, max_positions), generator=generator) * 0.02
        if self.keys[0].dtype != torch.uint8:
            return scales
        head = self.int8_positions
        return torch.cat((scales[:, :, :head].contiguous().view(torch.float16), scales[:, :, head:].to(torch.float16)),
                         dim=2)

    def copied(self, *, float32_scales: bool = False) -> "Window":
        """A copy of this window with its own slots and scales; `float32_scales`: float32 ones of the
        same values, for a library from before the +kv4 layout's float16 scales (bench.step_ab's older
        baselines; both sides then step fresh copies alike). Its rows are bound here: bind_row takes
        that layout with float16 scales only."""
        copy = Window.__new__(Window)
        copy.keys, copy.values = [t.clone() for t in self.keys], [t.clone() for t in self.values]
        copy.int8_positions = self.int8_positions
        if float32_scales:  # the layout before: float32 [2, heads, max_positions], the head's and the rest
            copy.key_scales = [kv_cache.scale_values(t, self.int8_positions).clone() for t in self.key_scales]
            copy.value_scales = [kv_cache.scale_values(t, self.int8_positions).clone() for t in self.value_scales]
        else:
            copy.key_scales = [t.clone() for t in self.key_scales]
            copy.value_scales = [t.clone() for t in self.value_scales]
        copy.cross_keys, copy.cross_values = self.cross_keys, self.cross_values
        copy.rows = []
        for row, bound in enumerate(self.rows):
            caches = (RowCacheStruct * len(bound.caches))()
            for layer, cache in enumerate(bound.caches):
                slots, scales = copy.keys[layer][row], copy.key_scales[layer][row]
                caches[layer] = RowCacheStruct(slots.data_ptr(), copy.values[layer][row].data_ptr(), scales.data_ptr(),
                                               copy.value_scales[layer][row].data_ptr(), cache.cross_keys,
                                               cache.cross_values)
            keep = (*bound.keep, *copy.keys, *copy.values, *copy.key_scales, *copy.value_scales)
            copy.rows.append(dataclasses.replace(bound, caches=caches, keep=keep))
        return copy


# decoder_step.c's order: the phases, then each projection kind (added up here as "project")
PHASES = ("norm", "self_attention", "cross_attention", "gelu", "residual")
PROJECTIONS = ("qkv", "self_out", "cross_q", "cross_out", "fc1", "fc2", "lm_heads")


def phase_ms(steps: int) -> dict[str, float]:
    """Mean ms a step in each phase since the last call (riffd_step_profile); {} unless profiled."""
    read = kernels().riffd_step_profile
    read.argtypes, read.restype = [ctypes.c_void_p, ctypes.c_int64], ctypes.c_int64
    count = len(PHASES) + len(PROJECTIONS)
    ns = (ctypes.c_double * count)()
    if read(ns, count) != count:
        return {}
    ms = [ns[i] / max(steps, 1) / 1e6 for i in range(count)]
    return {"project": round(sum(ms[len(PHASES):]), 3), **{name: round(ms[i], 3) for i, name in enumerate(PHASES)}}


def step_ms(model: NativeModel, windows: list[Window], positions: list[int], steps: int) -> tuple[float, float]:
    """Median wall and CPU (all threads) milliseconds of one step of these windows."""
    batch = model.batch([row for window in windows for row in window.rows])
    batch.set_positions([p for p in positions for _ in range(2)])
    x = torch.randn(len(batch), HIDDEN)
    times, cpu = [], []
    for _ in range(steps + 1):
        hidden = x.clone()
        start, start_cpu = time.perf_counter(), time.process_time()
        model.step(hidden, batch)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return 1e3 * statistics.median(times[1:]), 1e3 * statistics.median(cpu[1:])


def read_bandwidth_gb_s(size_mb: int = 512, repeats: int = 5) -> float:
    """The best of `repeats` reads of a buffer in the pages the packed weights get (huge ones where the
    kernel has them: huge_pages.py), so that the floor is the weights' own."""
    buffer = huge_copy(torch.ones(size_mb * 2**20 // 4))
    buffer.sum()
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        buffer.sum()
        best = min(best, time.perf_counter() - start)
    return size_mb * 2**20 / best / 1e9


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_cpu_arguments(parser, emulate=False)
    parser.add_argument("--positions", default="16,500,1000,1500")
    parser.add_argument("--streams", default="1,2,4,8")
    parser.add_argument("--stream-position", type=int, default=250, help="where the batched streams are (spread out)")
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--kernels", default="int8,int8a8", help="batched part: int8 (16-bit activations), int8a8 (8-bit)")
    parser.add_argument("--kv-bits", default="8,4",
                        help="late part: the self-attention cache's bits, int8 (8) and the +kv4 engines' 4-bit layout (4)")
    parser.add_argument("--profile", action="store_true", help="time the batched steps' phases (a separate build)")
    args = parser.parse_args(argv)
    if args.profile:  # read when the kernels are first built, below
        os.environ["RIFFD_NATIVE_CFLAGS"] = f"{os.environ.get('RIFFD_NATIVE_CFLAGS', '')} -DRIFFD_STEP_PROFILE".strip()
    apply_cpu_arguments(args, "bench.native_step")
    positions = [int(p) for p in args.positions.split(",")]
    counts = [int(n) for n in args.streams.split(",")]
    generator = torch.Generator().manual_seed(1)
    weights = Weights()
    bandwidth = read_bandwidth_gb_s()
    print(f"CPU: {cpu_name()}, kernels {isa()}, {torch.get_num_threads()} threads; int8 weights "
          f"{weights.nbytes / 1e6:.0f} MB a step; read bandwidth {bandwidth:.1f} GB/s")

    kernels = {"int8": 16, "int8a8": 8}
    chosen = [name for name in args.kernels.split(",") if name]
    models = {name: weights.with_activation_bits(kernels[name]) for name in chosen}
    kv_bits = [int(b) for b in args.kv_bits.split(",")]
    lates = {bits: Window(max(positions) + 1, generator, bits) for bits in kv_bits}
    print(f"\none stream (2 rows), {chosen[0]}: {'kv bits':>7} {'position':>8} {'ms':>7} {'vs first':>8} "
          f"{'cache MB':>8} {'bytes allow':>11}")
    by_bits: dict[int, dict[int, dict]] = {bits: {} for bits in kv_bits}
    for position in positions:
        for bits in kv_bits:  # taking turns at each position: a busy moment hits both alike
            ms, cpu_ms = step_ms(models[chosen[0]], [lates[bits]], [position], args.steps)
            # K and V, 2 rows, codes + a float32 scale per vector
            cache_bytes = LAYERS * 2 * 2 * HEADS * (position + 1) * (HEAD_DIM * bits // 8 + 4)
            floor_ms = (weights.nbytes + cache_bytes) / bandwidth / 1e6
            by_bits[bits][position] = {"ms": round(ms, 2), "cpu_ms": round(cpu_ms, 2),
                                       "cache_mb": round(cache_bytes / 1e6, 1), "floor_ms": round(floor_ms, 2)}
            first = by_bits[bits][positions[0]]
            print(f"{'':28}{bits:>7} {position:>8} {ms:>7.2f} {ms / first['ms']:>7.2f}x {cache_bytes / 1e6:>8.1f} "
                  f"{floor_ms:>8.2f} ms ({floor_ms / first['floor_ms']:.2f}x)  cpu {cpu_ms:.2f} ms "
                  f"({cpu_ms / first['cpu_ms']:.2f}x)")
    by_position = by_bits[kv_bits[0]]
    bandwidth = max(bandwidth, read_bandwidth_gb_s())
    del lates

    print(f"\nbatched streams (2 rows each, around position {args.stream_position}):")
    print(f"  {'kernel':>7} {'streams':>7} {'step ms':>8} {'cpu ms':>8} {'stream-steps/s':>14} {'speedup':>8}")
    windows = [Window(args.stream_position + 64 * max(counts) + 1, generator) for _ in range(max(counts))]
    by_kernel: dict[str, dict[int, dict]] = {name: {} for name in chosen}
    for count in counts:
        spread = [args.stream_position + 37 * i for i in range(count)]
        for name in chosen:
            phase_ms(0)  # clear
            ms, cpu_ms = step_ms(models[name], windows[:count], spread, args.steps)
            phases = phase_ms(args.steps + 1)
            rate = count * 1e3 / ms
            by_kernel[name][count] = {"ms": round(ms, 2), "cpu_ms": round(cpu_ms, 2), "stream_steps_per_s": round(rate, 2)}
            if phases:
                by_kernel[name][count]["phases_ms"] = phases
            base = by_kernel[name][counts[0]]["stream_steps_per_s"] / counts[0]
            print(f"  {name:>7} {count:>7} {ms:>8.2f} {cpu_ms:>8.2f} {rate:>14.2f} {rate / base:>7.2f}x"
                  + ("  " + " ".join(f"{k} {v:.2f}" for k, v in phases.items()) if phases else ""))
    by_streams = by_kernel[chosen[0]]
    base = by_streams[counts[0]]["stream_steps_per_s"] / counts[0]
    first, last = by_position[positions[0]], by_position[positions[-1]]
    summary = {
        "cpu": cpu_name(), "isa": isa(), "threads": torch.get_num_threads(), "bandwidth_gb_s": round(bandwidth, 2),
        "weight_mb": round(weights.nbytes / 1e6, 1), "positions": by_position,
        "late_over_early": round(last["ms"] / first["ms"], 3),
        "late_over_early_bytes": round(last["floor_ms"] / first["floor_ms"], 3),
        "late_kernel": chosen[0],
        "kv_bits": {str(bits): {"positions": by_bits[bits],
                                "late_over_early": round(by_bits[bits][positions[-1]]["ms"] / by_bits[bits][positions[0]]["ms"], 3),
                                "late_over_early_cpu": round(by_bits[bits][positions[-1]]["cpu_ms"]
                                                             / by_bits[bits][positions[0]]["cpu_ms"], 3),
                                "late_over_early_bytes": round(by_bits[bits][positions[-1]]["floor_ms"]
                                                               / by_bits[bits][positions[0]]["floor_ms"], 3),
                                "ms_vs_first_bits": {str(p): round(by_bits[bits][p]["ms"] / by_position[p]["ms"], 3)
                                                     for p in positions}}
                    for bits in kv_bits},
        "streams": by_streams,
        **{f"speedup_{count}": round(by_streams[count]["stream_steps_per_s"] / base, 2) for count in counts},
        "kernels": {name: {"streams": by_kernel[name],
                           **{f"speedup_{count}": round(by_kernel[name][count]["stream_steps_per_s"]
                                                        / (by_kernel[name][counts[0]]["stream_steps_per_s"] / counts[0]), 2)
                              for count in counts}} for name in chosen},
    }
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
