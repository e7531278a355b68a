"""Benchmark: does a 4-bit self-attention cache keep int8a8's greedy agreement with float32 late in a window?

The cache's error grows with its length (a step attends over every slot written so far), so the
calibration's 24 frames say little about frame 1500. This run takes float32's own greedy window of
`--frames` frames for one prompt (its columns and guided scores, cached under `--cache-dir`: float32
decodes ~5 steps/s on 2 cores, so it is made once), then feeds those columns to int8a8 engines whose
cache keeps each key and value vector in one of several formats, and counts, per range of positions,
the share of greedy codes that are float32's (`agreement.forced_scores`' comparison).

Formats are simulated in the Python step: each vector is quantised and dequantised as it is written
(the cache itself stays float32), so every format runs through the same code and only the rounding
differs:

- `float32`: no rounding (the int8a8 weights' own disagreement);
- `int8`: today's cache (round(x * 127 / max|x|), a scale per head_dim vector);
- `s7v64`: 4-bit symmetric codes -7..7, one scale per 64-vector;
- `s7g32`: the same per group of 32 (two scales per vector);
- `a15v64`: 4-bit codes 0..15 over [min, max] of the vector (a scale and an offset);
- `a15g32`: the same per group of 32;
- `s7v64h24`, `s7v64h64`, `s7v64h128`: int8 for the window's first 24 / 64 / 128 positions, s7v64 after
  (the head of the window in int8, where few slots average nothing out);
- `engine`, `engine+kv4`: the engine as the daemon runs it (`--engine` with and without +kv4: the
  native step and its own cache where riffd's kernels run), nothing simulated.

Prints a table, then one JSON object as the last line.

    python -m bench.kv4_agreement [--model random/musicgen-small] [--frames 1500]
        [--formats int8,s7v64,s7g32,a15v64,a15g32] [--ranges 0:24,0:500,500:1000,1000:1500]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from daemon.models.musicgen import kv_cache  # noqa: E402
from daemon.models.musicgen.agreement import forced_scores  # noqa: E402
from daemon.models.musicgen.conditioning import Conditioning, build_conditioning  # noqa: E402
from daemon.models.musicgen.engine import MusicgenEngine  # noqa: E402
from daemon.models.musicgen.loader import MusicgenBundle, load_folder, pick_device  # noqa: E402
from daemon.models.musicgen.loop import iter_window, plan_window, window_sampler  # noqa: E402
from daemon.models.musicgen.options import EngineOptions  # noqa: E402
from daemon.models.registry import default_cache_dir, resolve_folder  # noqa: E402
from daemon.native.branches import cpu_name  # noqa: E402
from protocol.params import GenerationParams  # noqa: E402

PROMPT = "80s pop track with bassy drums and synth"
GUIDANCE_SCALE = 3.0


def symmetric(levels: float, group: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """round(x * levels / max|x|) per `group` values, and back."""
    def fake(x: torch.Tensor) -> torch.Tensor:
        g = x.float().unflatten(-1, (-1, min(group, x.shape[-1])))
        largest = g.abs().amax(dim=-1, keepdim=True)
        inverse = torch.where(largest > 0, levels / largest, torch.zeros_like(largest))
        codes = torch.round(g * inverse).clamp(-levels, levels)
        return (codes * (largest / levels)).flatten(-2)
    return fake


def offset(levels: float, group: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """round((x - min) * levels / (max - min)) per `group` values, and back."""
    def fake(x: torch.Tensor) -> torch.Tensor:
        g = x.float().unflatten(-1, (-1, min(group, x.shape[-1])))
        low, high = g.amin(dim=-1, keepdim=True), g.amax(dim=-1, keepdim=True)
        step = (high - low) / levels
        inverse = torch.where(step > 0, 1.0 / step, torch.zeros_like(step))
        codes = torch.round((g - low) * inverse).clamp(0, levels)
        return (codes * step + low).flatten(-2)
    return fake


FORMATS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "float32": lambda x: x,  # no cache rounding: what the weights alone cost
    "int8": symmetric(kv_cache.INT8_LEVELS, 64),
    "s7v64": symmetric(7.0, 64),
    "s7g32": symmetric(7.0, 32),
    "a15v64": offset(15.0, 64),
    "a15g32": offset(15.0, 32),
}

#: Int8 for the first positions of a window, 4-bit (s7v64) after: name -> positions kept in int8.
HEADS: dict[str, int] = {"s7v64h24": 24, "s7v64h64": 64, "s7v64h128": 128}

#: The real engines (native step where riffd's kernels run): today's int8 cache, and +kv4's.
NATIVE: dict[str, bool] = {"engine": False, "engine+kv4": True}


@torch.inference_mode()
def float32_window(engine: MusicgenEngine, cond: Conditioning, frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """float32's greedy columns `[B, K, steps]` of one window and its guided scores `[steps, B * K, V]` before each."""
    decoder, bundle = engine.decoder, engine.bundle
    pattern, first_slot = plan_window(bundle, cond, None, frames)
    params = GenerationParams(duration_s=frames / bundle.frame_rate, greedy=True, guidance_scale=GUIDANCE_SCALE)
    sampler = window_sampler(bundle, cond, pattern, params, None, decoder.vocab)
    scores: list[torch.Tensor] = []
    columns: list[torch.Tensor] = []
    started = time.perf_counter()
    with decoder.open_cache(cond.hidden_states.shape[0], first_slot + pattern.steps - 1) as cache:
        logits = decoder.prefill(cache, cond, pattern.inputs)
        for column in iter_window(sampler, logits, lambda step, column: decoder.step(cache, column, first_slot + step),
                                  None, on_logits=lambda logits: scores.append(sampler.scores(logits))):
            columns.append(column)
            if len(columns) % 250 == 0:
                print(f"float32: {len(columns)} steps, {time.perf_counter() - started:.0f} s", flush=True)
    return torch.stack(columns, dim=-1), torch.stack(scores)


def setup(parser: argparse.ArgumentParser) -> tuple[argparse.Namespace, MusicgenBundle, Conditioning]:
    """The agreement benchmarks' common start: `--cache-dir` added, the arguments parsed, `--model`
    loaded on the CPU and the guided conditioning of `PROMPT` built."""
    parser.add_argument("--cache-dir", type=Path, default=Path("/tmp/riffd-kv4"),
                        help="where float32's windows are kept between runs")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    bundle = load_folder(resolve_folder(args.model, cache_dir=default_cache_dir()), model_id=args.model,
                         device=pick_device("cpu"))
    return args, bundle, build_conditioning(bundle, [PROMPT], guidance_scale=GUIDANCE_SCALE)


def kept(path: Path, compute: Callable[[], tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """float32's columns and scores saved at `path` by an earlier run, else `compute()`d and saved there
    (a 1500-frame float32 window takes minutes on a CPU)."""
    if path.exists():
        saved = torch.load(path)
        return saved["columns"], saved["scores"]
    columns, scores = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"columns": columns, "scores": scores}, path)
    return columns, scores


def with_format(engine: MusicgenEngine, fake: Callable[[torch.Tensor], torch.Tensor],
                head: Callable[[torch.Tensor], torch.Tensor] | None = None, head_positions: int = 0) -> None:
    """Make `engine` step in Python over a float32 cache whose every written vector went through
    `fake`, or through `head` at positions below `head_positions`."""
    decoder = engine.decoder
    decoder.native = None
    decoder.cache_dtype = torch.float32
    original = kv_cache.KVCache.write

    def write(self: kv_cache.KVCache, layer: int, positions: torch.Tensor, keys: torch.Tensor,
              values: torch.Tensor) -> None:
        if head is None:
            original(self, layer, positions, fake(keys), fake(values))
            return
        early = (positions < head_positions).view(1, 1, -1, 1)
        original(self, layer, positions, torch.where(early, head(keys), fake(keys)),
                 torch.where(early, head(values), fake(values)))

    kv_cache.KVCache.write = write  # type: ignore[method-assign]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="random/musicgen-small")
    parser.add_argument("--engine", default="int8a8")
    parser.add_argument("--frames", type=int, default=1500)
    parser.add_argument("--formats", default=",".join(FORMATS))
    parser.add_argument("--ranges", default="0:24,0:500,500:1000,1000:1500",
                        help="step ranges (start:end) to report agreement over")
    args, bundle, cond = setup(parser)
    columns, want = kept(args.cache_dir / f"{args.model.replace('/', '_')}-{args.frames}.pt",
                         lambda: float32_window(MusicgenEngine(bundle, EngineOptions(warmup=False)), cond, args.frames))
    ranges = [tuple(int(v) for v in r.split(":")) for r in args.ranges.split(",")]
    want_codes = want.argmax(-1)
    results: dict[str, dict[str, float]] = {}
    original_write = kv_cache.KVCache.write
    weights = EngineOptions.parse(args.engine).weights
    for name in args.formats.split(","):
        if name in NATIVE:  # the engine as the daemon runs it: its own cache and step, nothing simulated
            engine = MusicgenEngine(bundle, EngineOptions(weights=weights, kv4=NATIVE[name], warmup=False))
        elif name in HEADS:
            engine = MusicgenEngine(bundle, EngineOptions(weights=weights, warmup=False))
            with_format(engine, FORMATS["s7v64"], FORMATS["int8"], HEADS[name])
        else:
            engine = MusicgenEngine(bundle, EngineOptions(weights=weights, warmup=False))
            with_format(engine, FORMATS[name])
        started = time.perf_counter()
        try:
            got = forced_scores(engine, cond, columns, GUIDANCE_SCALE)
        finally:
            kv_cache.KVCache.write = original_write  # type: ignore[method-assign]
        same = got.argmax(-1) == want_codes
        row = {f"{a}:{b}": round(float(same[a:b].float().mean()), 4) for a, b in ranges}
        diff = got - want
        row["all"] = round(float(same.float().mean()), 4)
        row["relative_logit_error"] = round(float(diff.pow(2).mean().sqrt() / want.pow(2).mean().sqrt()), 4)
        row["seconds"] = round(time.perf_counter() - started, 1)
        results[name] = row
        print(name, json.dumps(row), flush=True)
    print(json.dumps({"model": args.model, "engine": args.engine, "prompt": PROMPT, "frames": args.frames,
                      "steps": int(columns.shape[-1]), "cpu": cpu_name(), "threads": torch.get_num_threads(),
                      "load_avg_1m": round(os.getloadavg()[0], 2), "agreement": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
