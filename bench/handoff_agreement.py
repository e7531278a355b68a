"""Benchmark: does the long-form hand-off (handoff.py) keep the greedy codes of a prefilled window?

A window after the first restarts from the last `--context` frames of the one before. Today's
engines fill its cache with one prefill of those frames; the hand-off fills it with the native
step, one context column a step (riding the window before's steps), then samples. Approximate
engines' step and prefill round differently (+kv4 keys are quantised before later positions read
them; int8a8 quantises each row's activations), so this run measures what that changes:

1. float32's greedy window of 1500 frames for one prompt (as `bench.kv4_agreement` caches it under
   `--cache-dir`), whose last `--context` frames are the next window's context;
2. float32's greedy continuation of that context (`--frames` steps after its prefill: the reference);
3. for each `--engines` mode, the guided scores before each reference column, teacher-forced
   (`agreement.forced_scores`' comparison: one early disagreement does not snowball), after
   (a) today's prefill and (b) the hand-off's steps. Greedy agreement of (a) and (b) with float32,
   and of (b) with (a).

Prints one line per mode, then one JSON object as the last line.

    python -m bench.handoff_agreement [--model random/musicgen-small] [--engines int8a8+kv4,int8+kv4]
        [--context 600] [--frames 150]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from bench.kv4_agreement import GUIDANCE_SCALE, PROMPT, float32_window, kept, setup  # noqa: E402
from daemon.models.musicgen.conditioning import Conditioning  # noqa: E402
from daemon.models.musicgen.delay import WindowPattern, delays, undo_delay  # noqa: E402
from daemon.models.musicgen.engine import MusicgenEngine  # noqa: E402
from daemon.models.musicgen.loader import MusicgenBundle  # noqa: E402
from daemon.models.musicgen.loop import iter_window, window_sampler  # noqa: E402
from daemon.models.musicgen.options import EngineOptions  # noqa: E402
from daemon.models.musicgen.sampling import apply_guidance  # noqa: E402
from daemon.native.branches import cpu_name  # noqa: E402
from protocol.params import GenerationParams  # noqa: E402

WINDOW_FRAMES = 1500


def next_pattern(bundle: MusicgenBundle, context: torch.Tensor, frames: int) -> WindowPattern:
    return WindowPattern.plan(context, context.shape[0], bundle.num_codebooks, bundle.audio_channels, frames,
                              bundle.pad_token_id, bundle.device)


@torch.inference_mode()
def float32_continuation(engine: MusicgenEngine, cond: Conditioning, pattern: WindowPattern,
                         frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """float32's greedy columns `[B, K, steps]` after prefilling `pattern`'s context, and its scores before each."""
    decoder, bundle = engine.decoder, engine.bundle
    params = GenerationParams(duration_s=frames / bundle.frame_rate, greedy=True, guidance_scale=GUIDANCE_SCALE)
    sampler = window_sampler(bundle, cond, pattern, params, None, decoder.vocab)
    first_slot = pattern.inputs.shape[-1]
    scores: list[torch.Tensor] = []
    with decoder.open_cache(cond.hidden_states.shape[0], first_slot + pattern.steps - 1) as cache:
        logits = decoder.prefill(cache, cond, pattern.inputs)
        columns = list(iter_window(sampler, logits, lambda step, column: decoder.step(cache, column, first_slot + step),
                                   None, on_logits=lambda logits: scores.append(sampler.scores(logits))))
    return torch.stack(columns, dim=-1), torch.stack(scores)


@torch.inference_mode()
def forced(engine: MusicgenEngine, cond: Conditioning, inputs: torch.Tensor, columns: torch.Tensor,
           handoff: bool) -> tuple[torch.Tensor, float]:
    """Guided scores `[steps, B * K, V]` before each of `columns` `[B, K, steps]` after the context
    `inputs` `[B, K, P + 1]`: prefilled, or (`handoff`) stepped one column at a time as the hand-off
    feeds them (`decoder.step` is `step_streams` on one stream: the same bits as in a batch). Also
    the seconds the context took."""
    decoder = engine.decoder
    steps, first_slot = columns.shape[-1], inputs.shape[-1]
    scores: list[torch.Tensor] = []
    with decoder.open_cache(cond.hidden_states.shape[0], first_slot + steps - 1) as cache:
        started = time.perf_counter()
        if handoff:
            decoder.set_condition(cache, cond)
            for slot in range(first_slot):
                logits = decoder.step(cache, inputs[..., slot], slot)
        else:
            logits = decoder.prefill(cache, cond, inputs)
        context_s = time.perf_counter() - started
        for step in range(steps):
            scores.append(apply_guidance(logits.reshape(-1, decoder.vocab), GUIDANCE_SCALE))
            if step + 1 < steps:
                logits = decoder.step(cache, columns[..., step], first_slot + step)
    return torch.stack(scores), context_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="random/musicgen-small")
    parser.add_argument("--engines", default="int8a8+kv4,int8+kv4")
    parser.add_argument("--context", type=int, default=600, help="the next window's context frames")
    parser.add_argument("--frames", type=int, default=150, help="steps compared after the seam")
    args, bundle, cond = setup(parser)
    reference = MusicgenEngine(bundle, EngineOptions(warmup=False))
    first, _ = kept(args.cache_dir / f"{args.model.replace('/', '_')}-{WINDOW_FRAMES}.pt",
                    lambda: float32_window(reference, cond, WINDOW_FRAMES))
    # The window's columns after its BOS column (all padding), as the delay pattern lays them.
    bos = torch.full_like(first[..., :1], bundle.pad_token_id)
    frames = undo_delay(torch.cat([bos, first], dim=-1), delays(bundle.num_codebooks, bundle.audio_channels),
                        WINDOW_FRAMES)
    context = frames[..., -args.context:]
    pattern = next_pattern(bundle, context, args.frames)
    columns, want = kept(args.cache_dir / f"{args.model.replace('/', '_')}-seam-{args.context}-{args.frames}.pt",
                         lambda: float32_continuation(reference, cond, pattern, args.frames))
    want_codes = want.argmax(-1)
    # Codebooks the pattern forces (the context's, in the delay ramp) say nothing: only sampled ones count.
    sampled = torch.stack([~pattern.forced(step) for step in range(columns.shape[-1])])  # [steps, K]
    sampled = sampled.repeat(1, cond.batch_size)

    def share(a: torch.Tensor, b: torch.Tensor) -> float:
        return round(float((a == b)[sampled[:a.shape[0]]].float().mean()), 4)

    results: dict[str, dict[str, float]] = {}
    for mode in args.engines.split(","):
        engine = MusicgenEngine(bundle, EngineOptions.parse(mode + "+nowarmup"))
        prefilled, prefill_s = forced(engine, cond, pattern.inputs, columns, handoff=False)
        handed, handoff_s = forced(engine, cond, pattern.inputs, columns, handoff=True)
        prefill_codes, handoff_codes = prefilled.argmax(-1), handed.argmax(-1)
        row = {"prefill_vs_float32": share(prefill_codes, want_codes),
               "handoff_vs_float32": share(handoff_codes, want_codes),
               "handoff_vs_prefill": share(handoff_codes, prefill_codes),
               "handoff_vs_prefill_first_step": share(handoff_codes[:1], prefill_codes[:1]),
               "max_score_difference": round(float((handed - prefilled).abs().max()), 4),
               "prefill_s": round(prefill_s, 2), "context_steps_alone_s": round(handoff_s, 2),
               "native_step": engine.decoder.native is not None}
        results[mode] = row
        print(mode, json.dumps(row), flush=True)
    print(json.dumps({"model": args.model, "prompt": PROMPT, "context_frames": args.context,
                      "compared_steps": int(columns.shape[-1]), "cpu": cpu_name(),
                      "threads": torch.get_num_threads(), "load_avg_1m": round(os.getloadavg()[0], 2),
                      "agreement": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
