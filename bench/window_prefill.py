"""Benchmark: where a long-form window's prefill goes, part by part, for the native engines.

A 60 s job has three windows; each later one re-runs its ~601 context frames through the decoder
(x 2 rows with guidance) before its first step: `MusicgenDecoder.prefill`, with the projections on
riffd's int8 kernels (int8: activations at 16 bits, int8a8: at 8), the self- and cross-attention on
riffd's kernel (`daemon/native/prefill_attention.c`) or PyTorch's, the GELU on riffd's or PyTorch's. This loads `--model`, builds one
such window (random context codes: the arithmetic does not depend on them) and times its prefill
with a timer around each part, rounds alternating riffd's attention and GELU and PyTorch's
(`--kernels`), so the two compare within the same minutes of a shared machine.

Per part it prints wall and CPU ms (CPU: this process's threads together, which a busy machine
inflates less than the wall clock), and each part's rate against what bounds it on this CPU:
- projections: multiply-adds a second (rows x weights / time). Their bound is the product
  instruction: AVX-512 VNNI's vpdpbusd makes 64 int8 products a cycle and core, 16-bit activations
  need two of them per product (high and low byte), 8-bit ones one;
- self-attention: float32 flops a second (causal: q.K and the weighted values over the visible
  keys only) against the FMA units' 32 flops a cycle and core (Zen 4, 512-bit ops as two 256-bit);
- the rest (cross-attention, cache writes and reads, norms, the activation, glue) as time only.
Prints a table per engine and attention, then one JSON object as the last line.

    python -m bench.window_prefill [--model random/musicgen-small] [--engines int8,int8a8]
        [--context 601] [--repeats 3] [--kernels riffd,torch] [--threads N]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import daemon  # noqa: E402,F401  (before torch: riffd's threads, not OpenMP's spinning)
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from bench.isa import add_cpu_arguments, apply_cpu_arguments  # noqa: E402
from daemon.models.musicgen import decoder as decoder_module  # noqa: E402
from daemon.models.musicgen import kv_cache, speed  # noqa: E402
from daemon.models.musicgen.conditioning import build_conditioning  # noqa: E402
from daemon.models.musicgen.engine import MusicgenEngine  # noqa: E402
from daemon.models.musicgen.loader import load_folder  # noqa: E402
from daemon.models.musicgen.loop import plan_window  # noqa: E402
from daemon.models.musicgen.options import EngineOptions  # noqa: E402
from daemon.models.registry import default_cache_dir, resolve_folder  # noqa: E402
from daemon.native import gelu, isa, prefill_attention  # noqa: E402
from daemon.native.branches import cpu_name  # noqa: E402

PROMPT = "80s pop track with bassy drums and synth"
WINDOW_FRAMES = 1500  # musicgen's 30 s window at 50 frames a second


class PartTimes:
    """Wall and CPU seconds per named part, summed over the calls made while `timing`."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = collections.defaultdict(float)
        self.cpu: dict[str, float] = collections.defaultdict(float)
        self.calls: dict[str, int] = collections.defaultdict(int)
        self.stack: list[str] = []

    def wrap(self, name: str | Callable[..., str], fn: Callable[..., Any]) -> Callable[..., Any]:
        """`fn`, its time added to `name` (or `name(*args)`); an inner timed call's time is its own
        part's, not its caller's as well."""
        def timed(*args: Any, **kwargs: Any) -> Any:
            part = name if isinstance(name, str) else name(*args)
            if self.stack:  # nested: the outer part is charged only its own time
                return fn(*args, **kwargs)
            self.stack.append(part)
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.stack.pop()
                self.wall[part] += time.perf_counter() - wall
                self.cpu[part] += time.process_time() - cpu
                self.calls[part] += 1
        return timed


@contextlib.contextmanager
def patched(obj: Any, name: str, value: Any) -> Iterator[None]:
    """`obj.name = value` for the block (frozen dataclasses too)."""
    old = getattr(obj, name)
    assign = object.__setattr__ if dataclasses.is_dataclass(obj) and not isinstance(obj, type) else setattr
    assign(obj, name, value)
    try:
        yield
    finally:
        assign(obj, name, old)


@contextlib.contextmanager
def instrumented(engine: MusicgenEngine, parts: PartTimes, kernels: str) -> Iterator[None]:
    """Timers around each part of `engine`'s prefill; `kernels` 'torch': PyTorch's attention and GELU
    instead of riffd's."""
    decoder = engine.decoder
    weights = decoder.weights
    sdpa = F.scaled_dot_product_attention

    def attention_name(q: torch.Tensor, keys: torch.Tensor, *_: Any, **__: Any) -> str:
        return "self-attention" if keys.shape[2] == q.shape[2] else "cross-attention"

    class TimedF:  # decoder.py's `F`, its attention timed
        def __getattr__(self, name: str) -> Any:
            return getattr(F, name)

    timed_f = TimedF()
    timed_f.scaled_dot_product_attention = parts.wrap(attention_name, sdpa)  # type: ignore[attr-defined]
    # one timed GELU as both the weights' activation and decoder.py's F.gelu, which it checks against
    timed_gelu = parts.wrap("activation", weights.activation)
    if weights.activation is F.gelu:
        timed_f.gelu = timed_gelu  # type: ignore[attr-defined]
    int8_call = speed.Int8Linear.__call__
    projection_name = f"projections ({engine.options.weights})"
    with contextlib.ExitStack() as stack:
        stack.enter_context(patched(decoder_module, "F", timed_f))
        stack.enter_context(patched(speed.Int8Linear, "__call__", parts.wrap(projection_name, int8_call)))
        stack.enter_context(patched(kv_cache.KVCache, "write", parts.wrap("cache write", kv_cache.KVCache.write)))
        stack.enter_context(patched(kv_cache.KVCache, "read", parts.wrap("cache read", kv_cache.KVCache.read)))
        native = prefill_attention.causal_attention
        stack.enter_context(patched(prefill_attention, "causal_attention", parts.wrap("self-attention", native)))
        masked = prefill_attention.masked_attention
        stack.enter_context(patched(prefill_attention, "masked_attention", parts.wrap("cross-attention", masked)))
        if kernels == "torch":
            stack.enter_context(patched(prefill_attention, "fits", lambda *_, **__: False))
            stack.enter_context(patched(gelu, "fits", lambda *_: False))
        stack.enter_context(patched(weights, "activation", timed_gelu))
        stack.enter_context(patched(gelu, "gelu_", parts.wrap("activation", gelu.gelu_)))
        stack.enter_context(patched(decoder, "set_condition", parts.wrap("condition", decoder.set_condition)))
        for layer in weights.layers:
            for field in ("self_norm", "cross_norm", "ffn_norm"):
                norm = getattr(layer, field)
                if norm is not None:
                    stack.enter_context(patched(layer, field, parts.wrap("norms", norm)))
        yield


def causal_flops(rows: int, heads: int, frames: int, head_dim: int) -> float:
    """Float ops of causal self-attention: q.K and the weighted values over keys 0..i for query i."""
    visible = frames * (frames + 1) / 2
    return 2 * 2 * rows * heads * visible * head_dim


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="random/musicgen-small")
    parser.add_argument("--engines", default="int8,int8a8")
    parser.add_argument("--context", type=int, default=601, help="context frames re-run by the window (601: a 60 s job's)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--kernels", default="riffd,torch",
                        help="whose attention and GELU to alternate: riffd's (what the engines run), PyTorch's")
    add_cpu_arguments(parser, emulate=False)
    args = parser.parse_args(argv)
    apply_cpu_arguments(args, "bench.window_prefill")
    device = torch.device("cpu")
    bundle = load_folder(resolve_folder(args.model, cache_dir=default_cache_dir()), model_id=args.model, device=device)
    cond = build_conditioning(bundle, [PROMPT], guidance_scale=3.0)
    codes = torch.randint(0, bundle.model.config.decoder.vocab_size, (1, bundle.num_codebooks, args.context),
                          generator=torch.Generator().manual_seed(0))
    pattern, first_slot = plan_window(bundle, cond, codes, WINDOW_FRAMES - args.context)
    rows = cond.hidden_states.shape[0]
    frames = pattern.inputs.shape[-1]
    attentions = [a for a in args.kernels.split(",") if a]
    print(f"CPU: {cpu_name()} ({isa()}), {torch.get_num_threads()} threads; {args.model}, {rows} rows x {frames} frames")
    results: dict[str, Any] = {}
    for name in filter(None, args.engines.split(",")):
        engine = MusicgenEngine(bundle, dataclasses.replace(EngineOptions.parse(name), warmup=False))
        decoder, weights = engine.decoder, engine.decoder.weights
        macs = rows * frames * sum(p.packed.rows * p.packed.cols for layer in weights.layers
                                   for p in layer.projections if isinstance(p, speed.Int8Linear) and p.packed)
        flops = len(weights.layers) * causal_flops(rows, weights.heads, frames, weights.head_dim)
        runs: dict[str, list[PartTimes]] = {a: [] for a in attentions}
        totals: dict[str, list[tuple[float, float]]] = {a: [] for a in attentions}
        for repeat in range(args.repeats + 1):  # the first round warms up
            for attention in attentions:
                parts = PartTimes()
                with instrumented(engine, parts, attention), decoder.open_cache(rows, first_slot + pattern.steps - 1) as cache:
                    wall, cpu = time.perf_counter(), time.process_time()
                    decoder.prefill(cache, cond, pattern.inputs)
                    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                if repeat:
                    runs[attention].append(parts)
                    totals[attention].append((wall, cpu))
        for attention in attentions:
            best = min(range(len(totals[attention])), key=lambda i: totals[attention][i][0])
            parts, (wall, cpu) = runs[attention][best], totals[attention][best]
            label = f"{name}, {attention} attention and GELU"
            print(f"\n{label}: prefill {wall * 1e3:.0f} ms wall, {cpu * 1e3:.0f} ms CPU "
                  f"(median wall {sorted(w for w, _ in totals[attention])[len(totals[attention]) // 2] * 1e3:.0f} ms)")
            print(f"  {'part':28} {'wall ms':>8} {'CPU ms':>8} {'share':>6}  rate")
            table: dict[str, Any] = {}
            rest_wall, rest_cpu = wall, cpu
            for part in sorted(parts.wall, key=lambda p: -parts.wall[p]):
                w, c = parts.wall[part], parts.cpu[part]
                rest_wall, rest_cpu = rest_wall - w, rest_cpu - c
                rate = ""
                if part.startswith("projections"):
                    rate = f"{macs / w / 1e9:.0f} G multiply-adds/s"
                elif part == "self-attention":
                    rate = f"{flops / w / 1e9:.0f} GFLOP/s"
                print(f"  {part:28} {w * 1e3:8.1f} {c * 1e3:8.1f} {100 * w / wall:5.1f}%  {rate}")
                table[part] = {"wall_ms": round(w * 1e3, 1), "cpu_ms": round(c * 1e3, 1)}
            print(f"  {'rest (embedding, glue)':28} {rest_wall * 1e3:8.1f} {rest_cpu * 1e3:8.1f} {100 * rest_wall / wall:5.1f}%")
            table["rest"] = {"wall_ms": round(rest_wall * 1e3, 1), "cpu_ms": round(rest_cpu * 1e3, 1)}
            results[label] = {"wall_ms": round(wall * 1e3, 1), "cpu_ms": round(cpu * 1e3, 1),
                              "walls_ms": [round(w * 1e3, 1) for w, _ in totals[attention]], "parts": table}
    summary = {"cpu": cpu_name(), "isa": isa(), "threads": torch.get_num_threads(), "model": args.model,
               "rows": rows, "frames": frames, "results": results}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
