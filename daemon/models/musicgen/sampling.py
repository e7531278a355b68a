"""Choosing the next code from the decoder's scores: guidance, greedy, temperature, top-k, top-p."""

from __future__ import annotations

import torch

from protocol.params import GenerationParams


def apply_guidance(logits: torch.Tensor, guidance_scale: float) -> torch.Tensor:
    """Classifier-free guidance: `[2N, V]` (conditional half first) to `[N, V]`."""
    cond, uncond = logits.chunk(2)
    return uncond + (cond - uncond) * guidance_scale


def sample_next(scores: torch.Tensor, params: GenerationParams, generator: torch.Generator | None) -> torch.Tensor:
    """One code per row of `scores` `[N, V]` (float32); returns `[N]` int64."""
    if params.greedy:
        return scores.argmax(dim=-1)
    scores = scores / params.temperature
    vocab = scores.shape[-1]
    if 0 < params.top_k < vocab:
        kth_best = torch.topk(scores, params.top_k, dim=-1).values[:, -1:]
        scores = scores.masked_fill(scores < kth_best, float("-inf"))
    if 0 < params.top_p < 1:
        scores = _nucleus(scores, params.top_p)
    probs = torch.softmax(scores, dim=-1)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]


def _nucleus(scores: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keep the smallest set of most likely codes whose probability reaches `top_p`."""
    sorted_scores, order = torch.sort(scores, dim=-1, descending=True)
    cumulative = torch.softmax(sorted_scores, dim=-1).cumsum(dim=-1)
    # A code is dropped when the codes before it already reach top_p; the best one always stays.
    drop_sorted = (cumulative - torch.softmax(sorted_scores, dim=-1)) >= top_p
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return scores.masked_fill(drop, float("-inf"))


def make_generator(seed: int, device: torch.device) -> torch.Generator:
    """A generator private to one request, so concurrent jobs cannot disturb each other's draws."""
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    return generator
