"""Choosing the next code from the decoder's scores: guidance, greedy, temperature, top-k, top-p."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from daemon.native import sampling as native_sampling
from protocol.params import GenerationParams


def apply_guidance(logits: torch.Tensor, guidance_scale: float) -> torch.Tensor:
    """Classifier-free guidance: `[2N, V]` (conditional half first) to `[N, V]`."""
    cond, uncond = logits.chunk(2)
    return uncond + (cond - uncond) * guidance_scale


def sample_next(scores: torch.Tensor, params: GenerationParams, rng: torch.Generator | None) -> torch.Tensor:
    """One code per row of `scores` `[N, V]` (float32); returns `[N]` int64."""
    if params.greedy:
        return scores.argmax(dim=-1)
    return draw(distribution(scores, params), rng)


def draw(probs: torch.Tensor, rng: torch.Generator | None) -> torch.Tensor:
    """One code per row of `probs` `[N, V]`, as `torch.multinomial(probs, 1)` draws it: the row's
    argmax of p / E, E ~ Exp(1) from `rng` (the exponential race; tests check the two agree)."""
    return race(probs, exponentials(probs, rng))


def exponentials(probs: torch.Tensor, rng: torch.Generator | None, out: torch.Tensor | None = None) -> torch.Tensor:
    """The Exp(1) draws `draw` races `probs` with, from `rng` (into `out`, shaped as `probs`, if given).

    Apart from `race`, so that the streams of a batch each draw from their own generator into one
    tensor and race all their rows in one pass."""
    return (torch.empty_like(probs) if out is None else out).exponential_(1, generator=rng)


def race(probs: torch.Tensor, exponential: torch.Tensor) -> torch.Tensor:
    """Each row's code of `draw`: argmax of `probs / exponential` (a row's result is its own)."""
    return (probs / exponential).argmax(dim=-1)


def distribution(scores: torch.Tensor, params: GenerationParams) -> torch.Tensor:
    """The probabilities `[N, V]` that `sample_next` draws from (one-hot on the best code when greedy)."""
    if params.greedy:
        return F.one_hot(scores.argmax(dim=-1), scores.shape[-1]).to(scores.dtype)
    return torch.softmax(_cut(scores, params), dim=-1)


def guided_distribution(windows: Sequence[tuple[torch.Tensor, float | None]], params: GenerationParams) -> torch.Tensor:
    """`distribution` (sampling, not greedy) of several windows' scores side by side: window i's logits
    `[N_i * K, V]` and its guidance scale (None: unguided), guided as `apply_guidance` does, rows
    `[sum R_i, V]` in window order. The same bits as `torch.cat` of the guided scores into
    `distribution`, with guidance, temperature and top-k in one native pass per window where riffd's
    library runs (`daemon/native/sampling.c`); PyTorch's calls elsewhere."""
    scores = _native_scores(windows, params)
    if scores is None:
        guided = [apply_guidance(logits, scale) if scale is not None else logits for logits, scale in windows]
        return distribution(torch.cat(guided) if len(guided) > 1 else guided[0], params)
    return torch.softmax(scores, dim=-1)


def guided_codes(windows: Sequence[tuple[torch.Tensor, float | None]], params: GenerationParams,
                 generators: Sequence[torch.Generator | None]) -> torch.Tensor:
    """One code per row of `guided_distribution(windows, params)` `[sum R_i]`, window i's exponentials
    drawn from `generators[i]` in window order: `race(probs, noise)` with `noise` each window's
    `exponentials` (and each generator left where those leave it), to the bit. Where riffd's library
    runs, a window's guidance, cut, exponentials, softmax and race are one native call
    (`native_sampling.draw`; after a top-p cut, the scores' then `native_sampling.race` over all rows)."""
    if not 0 < params.top_p < 1:
        # No top-p: each window's whole draw is one native call (its rows are its own, so a window
        # that cannot, a NaN in its scores, takes PyTorch's path alone: the same codes).
        parts = []
        for window, generator in zip(windows, generators, strict=True):
            logits, scale = window
            codes = native_sampling.draw(logits, generator, guided=scale is not None,
                                         guidance_scale=scale if scale is not None else 1.0,
                                         temperature=params.temperature, top_k=params.top_k)
            parts.append(codes if codes is not None else _torch_codes([window], params, [generator]))
        return torch.cat(parts) if len(parts) > 1 else parts[0]
    sizes = [logits.shape[0] // 2 if scale is not None else logits.shape[0] for logits, scale in windows]
    scores = _native_scores(windows, params)
    if scores is not None:
        codes = native_sampling.race(scores, list(zip(generators, sizes, strict=True)))
        if codes is not None:
            return codes
    return _torch_codes(windows, params, generators, scores)


def _torch_codes(windows: Sequence[tuple[torch.Tensor, float | None]], params: GenerationParams,
                 generators: Sequence[torch.Generator | None], scores: torch.Tensor | None = None) -> torch.Tensor:
    """`guided_codes` in PyTorch's calls (from the windows' cut `scores` where they are made already)."""
    sizes = [logits.shape[0] // 2 if scale is not None else logits.shape[0] for logits, scale in windows]
    probs = guided_distribution(windows, params) if scores is None else torch.softmax(scores, dim=-1)
    noise = torch.empty_like(probs)
    for generator, rows, out in zip(generators, probs.split(sizes), noise.split(sizes), strict=True):
        exponentials(rows, generator, out)
    return race(probs, noise)


def _native_scores(windows: Sequence[tuple[torch.Tensor, float | None]], params: GenerationParams) -> torch.Tensor | None:
    """The windows' guided, tempered, top-k and top-p cut scores `[sum R_i, V]` (`_cut` of the guided rows,
    to the bit), guidance, temperature and top-k in sampling.c's pass; None where it cannot run."""
    vocab = windows[0][0].shape[-1]
    rows = [logits.shape[0] // 2 if scale is not None else logits.shape[0] for logits, scale in windows]
    scores = torch.empty((sum(rows), vocab), dtype=windows[0][0].dtype, device=windows[0][0].device)
    start = 0
    for (logits, scale), count in zip(windows, rows, strict=True):
        if not native_sampling.scores_into(scores[start:start + count], logits, guided=scale is not None,
                                           guidance_scale=scale if scale is not None else 1.0,
                                           temperature=params.temperature, top_k=params.top_k):
            return None
        start += count
    if 0 < params.top_p < 1:
        scores = _nucleus(scores, params.top_p)
    return scores


def _cut(scores: torch.Tensor, params: GenerationParams) -> torch.Tensor:
    """`scores` tempered, with the codes outside top-k and top-p at -inf: what the softmax takes."""
    scores = scores / params.temperature
    vocab = scores.shape[-1]
    if 0 < params.top_k < vocab:
        kth_best = torch.topk(scores, params.top_k, dim=-1).values[:, -1:]
        scores = scores.masked_fill(scores < kth_best, float("-inf"))
    if 0 < params.top_p < 1:
        scores = _nucleus(scores, params.top_p)
    return scores


def speculative_accept(target: torch.Tensor, draft: torch.Tensor, drafted: torch.Tensor,
                       rng: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Speculative sampling (Leviathan et al., 2023; Chen et al., 2023), one code per row.

    `drafted` `[N]` was drawn from `draft` `[N, V]`; keep it with probability
    min(1, target / draft), otherwise draw from the leftover mass max(0, target - draft).
    Either way the returned codes are distributed exactly as `target`. Returns the codes `[N]`
    and which rows kept their draft `[N]` bool.
    """
    rows = torch.arange(drafted.shape[0], device=drafted.device)
    p, q = target[rows, drafted], draft[rows, drafted]
    uniform = torch.rand(drafted.shape, generator=rng, device=drafted.device, dtype=target.dtype)
    kept = uniform * q < p  # u < p / q without dividing by a zero q
    if bool(kept.all()):
        return drafted, kept
    leftover = (target - draft).clamp(min=0)
    # Where the leftover is all zero (target == draft up to rounding), the target itself is exact.
    empty = leftover.sum(dim=-1, keepdim=True) <= 0
    leftover = torch.where(empty, target, leftover)
    redrawn = torch.multinomial(leftover, 1, generator=rng)[:, 0]
    return torch.where(kept, drafted, redrawn), kept


def _nucleus(scores: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keep the smallest set of most likely codes whose probability reaches `top_p`."""
    sorted_scores, order = torch.sort(scores, dim=-1, descending=True)
    cumulative = torch.softmax(sorted_scores, dim=-1).cumsum(dim=-1)
    # A code is dropped when the codes before it already reach top_p; the best one always stays.
    drop_sorted = (cumulative - torch.softmax(sorted_scores, dim=-1)) >= top_p
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return scores.masked_fill(drop, float("-inf"))

