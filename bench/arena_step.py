"""Benchmark: one shared decode step of N streams, today's path against the slot arena, in the same run.

Where riffd's native CPU step does not run (every GPU mode), `MusicgenDecoder.step_streams` multiplies
each stream's rows on their own; the slot arena (daemon/models/musicgen/arena.py) steps every row in one
fixed-shape step (on a GPU replayed from CUDA graphs). For each N this prefills N guided streams to
`--position` on both, then times `--steps` shared steps of each, taking turns `--rounds` times (the best
round of each counts), and prints ms a step, aggregate steps per second and the ratio
(`arena_speedup_N`: today's ms over the arena's). Decode steps only (no sampling, no codec). The logits
of the two paths are compared (max abs difference), and a stream's arena logits at slot 100 alone
against the same step beside a stream at slot 300, which makes the step read more slots
(`longer_read_bits_equal`: what keeps a stream's codes its own whoever plays; proven on the CPU by
tests/musicgen/test_arena.py). Prints a table, then one JSON object.

    .venv/bin/python -m bench.arena_step [--model random/musicgen-small] [--engine float32] [--device cpu]
        [--streams 1,4] [--position 100] [--steps 5] [--rounds 3] [--no-graphs]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from bench.musicgen_stream import sync  # noqa: E402
from daemon.models.musicgen.conditioning import build_conditioning  # noqa: E402
from daemon.models.musicgen.decoder import MusicgenDecoder  # noqa: E402
from daemon.models.musicgen.engine import MusicgenEngine  # noqa: E402
from daemon.models.musicgen.loader import MusicgenBundle, load_folder, pick_device  # noqa: E402
from daemon.models.musicgen.options import EngineOptions  # noqa: E402
from daemon.models.registry import default_cache_dir, resolve_folder  # noqa: E402
from daemon.native.branches import cpu_name  # noqa: E402


def timed_steps(decoder: MusicgenDecoder, caches: list, columns: list[torch.Tensor], start: int, steps: int,
                device: torch.device) -> tuple[float, list[torch.Tensor]]:
    """Seconds a step of `steps` shared steps from slot `start` (each stream at the same position), and the
    last step's logits."""
    logits: list[torch.Tensor] = []
    sync(device)
    began = time.perf_counter()
    with torch.inference_mode():
        for step in range(steps):
            logits = decoder.step_streams(caches, columns, [start + step] * len(caches))
    sync(device)
    return (time.perf_counter() - began) / steps, logits


def run(bundle: MusicgenBundle, options: EngineOptions, counts: list[int], position: int, steps: int, rounds: int,
        graphs: bool | None) -> dict[str, Any]:
    """Per N: today's ms a step, the arena's, their ratio, and the logits' largest difference."""
    device = bundle.device
    today = MusicgenEngine(bundle, options).decoder
    arena_engine = MusicgenEngine(bundle, options)
    arena = arena_engine.open_arena(max(counts), 2**62, graphs=graphs)
    if arena is None:
        raise SystemExit(f"{options.name} takes no slot arena here (see the log)")
    cond = build_conditioning(bundle, ["lofi hip hop beat"], guidance_scale=3.0)
    generator = torch.Generator().manual_seed(0)
    known = torch.randint(0, today.vocab, (1, bundle.num_codebooks, position), generator=generator).to(device)
    column = torch.randint(0, today.vocab, (1, bundle.num_codebooks), generator=generator).to(device)
    out: dict[str, Any] = {}
    for n in counts:
        with ExitStack() as stack:
            sets = []
            for decoder in (today, arena_engine.decoder):
                caches = [stack.enter_context(decoder.open_cache(2, position + (rounds + 1) * steps + 1))
                          for _ in range(n)]
                for cache in caches:
                    decoder.prefill(cache, cond, known)
                sets.append((decoder, caches))
            best = [float("inf"), float("inf")]
            slot = position
            last: list[list[torch.Tensor]] = [[], []]
            for _ in range(rounds):
                for index, (decoder, caches) in enumerate(sets):
                    took, last[index] = timed_steps(decoder, caches, [column] * n, slot, steps, device)
                    best[index] = min(best[index], took)
                slot += steps
            difference = max(float((a - b).abs().max()) for a, b in zip(*last, strict=True))
        row = {"today_ms": round(best[0] * 1e3, 3), "arena_ms": round(best[1] * 1e3, 3),
               "today_steps_per_s": round(n / best[0], 1), "arena_steps_per_s": round(n / best[1], 1),
               "arena_speedup": round(best[0] / best[1], 3), "logits_max_abs_difference": difference}
        out[str(n)] = row
        print(f"{n:3d} streams at slot {position}: today {row['today_ms']:.2f} ms a step, arena {row['arena_ms']:.2f} "
              f"({row['arena_speedup']:.2f}x); logits within {difference:.2e}", flush=True)
    return {"streams": out, "arena_rows": arena.rows, "arena_positions": arena.positions,
            "arena_mb": round(arena.nbytes / 2**20), "arena_graphs": arena.graphed,
            "longer_read_bits_equal": longer_read_bits_equal(arena_engine.decoder, cond, known, column)}


def longer_read_bits_equal(decoder: MusicgenDecoder, cond: Any, known: torch.Tensor, column: torch.Tensor) -> bool:
    """Whether a stream's arena logits at slot P (its context's length) are the same bits alone and beside a
    stream at slot 300 (the step then attends over more slots, the stream's past them masked)."""
    far = torch.cat([known] * (-(-301 // known.shape[-1])), dim=-1)[..., :300]
    with decoder.open_cache(2, known.shape[-1] + 2) as near_cache, decoder.open_cache(2, 302) as far_cache, \
            torch.inference_mode():
        decoder.prefill(near_cache, cond, known)
        decoder.prefill(far_cache, cond, far)
        slot = known.shape[-1]
        alone = decoder.step_streams([near_cache], [column], [slot])[0].clone()
        beside = decoder.step_streams([near_cache, far_cache], [column, column], [slot, 300])[0]  # slot rewritten alike
        return bool(torch.equal(alone, beside))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="random/musicgen-small")
    parser.add_argument("--engine", default="float32", help="a float mode (float32, bfloat16, float16 on a GPU)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--streams", default="1,4")
    parser.add_argument("--position", type=int, default=100, help="the slot the timed steps start at")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--graphs", action=argparse.BooleanOptionalAction, default=None,
                        help="the arena's step from CUDA graphs (default: on a GPU)")
    args = parser.parse_args()
    device = pick_device(args.device)
    bundle = load_folder(resolve_folder(args.model, cache_dir=default_cache_dir()), model_id=args.model, device=device)
    options = EngineOptions.parse(args.engine + "+nowarmup").validate(device)
    result = run(bundle, options, [int(n) for n in args.streams.split(",")], args.position, args.steps, args.rounds,
                 args.graphs)
    summary: dict[str, Any] = {f"arena_speedup_{n}": row["arena_speedup"] for n, row in result["streams"].items()}
    summary.update(result, model=args.model, engine=options.name, device=str(device),
                   cpu=cpu_name(), threads=torch.get_num_threads(), load_avg_1m=round(os.getloadavg()[0], 2))
    if device.type == "cuda":
        summary["gpu"] = torch.cuda.get_device_name(device)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
