"""How closely a faster engine mode follows the float32 engine on the same weights.

Both decoders are fed the same columns (the float32 engine's greedy ones), so one early
disagreement does not snowball into a different piece: each step is compared on equal footing.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from daemon.models.musicgen.conditioning import Conditioning
from daemon.models.musicgen.engine import MusicgenEngine
from daemon.models.musicgen.loop import iter_window, plan_window, window_sampler
from protocol.params import GenerationParams


@dataclass(frozen=True)
class Agreement:
    """Greedy codes agreement and logit error of one mode against float32, over every step."""

    mode: str
    steps: int
    token_agreement: float  # share of (step, batch, codebook) whose greedy code is the same
    max_logit_error: float  # largest absolute difference of guided scores
    relative_logit_error: float  # RMS difference over RMS of the float32 scores


@torch.inference_mode()
def forced_scores(engine: MusicgenEngine, cond: Conditioning, columns: torch.Tensor,
                  guidance_scale: float) -> torch.Tensor:
    """Guided scores `[steps, B * K, V]` before each of `columns` `[B, K, steps]`, fed in turn (no prompt)."""
    steps = columns.shape[-1]
    decoder, bundle = engine.decoder, engine.bundle
    pattern, first_slot = plan_window(bundle, cond, None, steps - bundle.num_codebooks // bundle.audio_channels + 1)
    params = GenerationParams(duration_s=1.0, greedy=True, guidance_scale=guidance_scale)
    sampler = window_sampler(bundle, cond, pattern, params, None, decoder.vocab, forced=columns)
    assert sampler.steps == steps
    scores: list[torch.Tensor] = []
    with decoder.open_cache(cond.hidden_states.shape[0], first_slot + steps) as cache:
        logits = decoder.prefill(cache, cond, pattern.inputs)
        for _ in iter_window(sampler, logits, lambda step, column: decoder.step(cache, column, first_slot + step),
                             None, on_logits=lambda logits: scores.append(sampler.scores(logits))):
            pass
    return torch.stack(scores)


def greedy_agreement(engine: MusicgenEngine, cond: Conditioning, columns: torch.Tensor, want: torch.Tensor,
                     guidance_scale: float) -> float:
    """The share of `engine`'s greedy codes, fed the reference's `columns`, that are the reference's own (`want`:
    the argmax of its `forced_scores`)."""
    return float((forced_scores(engine, cond, columns, guidance_scale).argmax(-1) == want).float().mean())


def compare(reference: MusicgenEngine, fast: MusicgenEngine, cond: Conditioning, frames: int,
            guidance_scale: float = 3.0, fast_cond: Conditioning | None = None) -> Agreement:
    """Agreement of `fast` with `reference` (float32) over `frames` greedy frames of `cond`
    (`fast_cond`: the same prompts as `fast` conditions them, e.g. from a faster text encoder)."""
    params = GenerationParams(duration_s=frames / reference.bundle.frame_rate, greedy=True,
                              guidance_scale=guidance_scale)
    columns = torch.stack(list(reference.columns(cond, None, frames, params, None)), dim=-1)
    want = forced_scores(reference, cond, columns, guidance_scale)
    got = forced_scores(fast, fast_cond or cond, columns, guidance_scale)
    diff = got - want
    return Agreement(
        mode=fast.options.name, steps=columns.shape[-1],
        token_agreement=float((got.argmax(-1) == want.argmax(-1)).float().mean()),
        max_logit_error=float(diff.abs().max()),
        relative_logit_error=float(diff.pow(2).mean().sqrt() / want.pow(2).mean().sqrt()),
    )
