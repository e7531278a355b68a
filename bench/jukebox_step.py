"""Benchmark: the cost of one cached Jukebox sampling step stays flat as the window fills.

Builds a random upsampler-shaped prior with a long window (n_ctx 8192 in 64 blocks, the
shape of the real upsamplers, narrower), fills its per-call cache up to several positions,
and times single steps there. As a baseline measured in the same run, it times what a step
costs without a cache (a full forward over every position so far). Prints per-step
milliseconds per position, the ratio last/first of each, and a JSON line last.

    /tmp/venv/bin/python bench/jukebox_step.py [--device cuda] [--steps 20] [--step eager|static|compiled]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from daemon.models.jukebox import JukeboxModel
from daemon.models.jukebox.config import JukeboxConfig
from daemon.models.jukebox.presets import DEBUG_CONFIG, init_random


def build_prior(n_ctx: int, width: int, layers: int, device: str, step: str):
    raw = copy.deepcopy(DEBUG_CONFIG)
    raw["prior_config_list"][2].update(
        n_ctx=n_ctx, blocks=64, hidden_size=width, num_layers=layers, n_heads=2, res_conv_width=32
    )
    torch.manual_seed(0)
    model = JukeboxModel(JukeboxConfig.from_dict(raw)).eval()
    init_random(model)
    model.set_step_mode(step)
    return model.priors[2].to(device)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


@torch.no_grad()
def time_cached_steps(prior, cond, tokens, position: int, steps: int, device: str) -> float:
    """Median ms of one cached step at `position` (cache prefilled with positions 0..position-1)."""
    cache = prior.new_cache(tokens.shape[0])
    prior.prefill(tokens[:, :position], cond, cache)
    times = []
    for i in range(steps):
        previous = tokens[:, position + i - 1 : position + i]
        sync(device)
        start = time.perf_counter()
        prior.sampling_step(previous, cond, cache)
        sync(device)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


@torch.no_grad()
def time_uncached_step(prior, cond, tokens, position: int, repeats: int, device: str) -> float:
    """Median ms of producing position `position` without a cache: a forward over 0..position."""
    times = []
    for _ in range(repeats):
        cache = prior.new_cache(tokens.shape[0])
        sync(device)
        start = time.perf_counter()
        prior.prefill(tokens[:, : position + 1], cond, cache)
        sync(device)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--n-ctx", type=int, default=8192)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--step", choices=["eager", "static", "compiled"], default="eager", help="sampling step mode")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    prior = build_prior(args.n_ctx, args.width, args.layers, args.device, args.step)
    n_ctx = prior.n_ctx
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, prior.music_vocab_size, (1, n_ctx), generator=g).to(args.device)
    upper = torch.randint(0, prior.music_vocab_size, (1, n_ctx // prior.cond_downsample), generator=g)
    metadata = prior.window_metadata(torch.tensor([[0, 0, 0, 5, 4]]), 0, n_ctx * prior.raw_to_tokens, 0)
    cond = prior.conditioning(upper.to(args.device), metadata.to(args.device))

    positions = [p for p in (64, 512, 2048, 4096, n_ctx - args.steps - 1) if p + args.steps < n_ctx]
    time_cached_steps(prior, cond, tokens, positions[0], 5, args.device)  # warm-up (and compile)
    cached, uncached = [], []
    print(f"prior: n_ctx {n_ctx}, width {args.width}, {args.layers} layers, device {args.device}, step {args.step}")
    print(f"{'position':>9} {'cached ms/step':>15} {'no-cache ms/step':>17}")
    for position in positions:
        cached.append(time_cached_steps(prior, cond, tokens, position, args.steps, args.device))
        uncached.append(time_uncached_step(prior, cond, tokens, position, 3, args.device))
        print(f"{position:>9} {cached[-1]:>15.3f} {uncached[-1]:>17.3f}")
    cached_ratio = cached[-1] / cached[0]
    uncached_ratio = uncached[-1] / uncached[0]
    print(f"cached step, last/first position: {cached_ratio:.2f}x (flat is ~1)")
    print(f"baseline without cache, last/first: {uncached_ratio:.2f}x")
    speedup = None
    if args.step != "eager":
        # the eager step on the same weights, same run: the baseline a step mode must beat
        eager = build_prior(args.n_ctx, args.width, args.layers, args.device, "eager")
        eager_ms = [time_cached_steps(eager, cond, tokens, p, args.steps, args.device) for p in positions]
        speedup = statistics.median(e / c for e, c in zip(eager_ms, cached))
        print(f"eager step ms: {', '.join(f'{t:.3f}' for t in eager_ms)}; {args.step} is {speedup:.2f}x faster")
    print(json.dumps({
        "bench": "jukebox_step",
        "device": args.device,
        "step": args.step,
        "positions": positions,
        "cached_ms": [round(t, 4) for t in cached],
        "uncached_ms": [round(t, 4) for t in uncached],
        "cached_ratio_last_first": round(cached_ratio, 3),
        "uncached_ratio_last_first": round(uncached_ratio, 3),
        "speedup_vs_eager": None if speedup is None else round(speedup, 3),
    }))


if __name__ == "__main__":
    main()
