"""Sampling Jukebox music tokens level by level, window by window.

The default draw reproduces transformers 4.40.2 exactly: per position, logits / temperature,
top-k/top-p filtering, then the normalised probabilities of
`torch.distributions.Categorical(logits=...)` sampled with one `torch.multinomial` call of
the same shape. With `seed` set, the draws come from a generator owned by the call (same
numbers as `torch.manual_seed(seed)` before the reference call, but no global state touched).

Windows: a level of `total` tokens is covered by windows of `n_ctx` tokens starting every
`hop = hop_fraction * n_ctx` tokens; each window keeps the tokens already there as context
and samples the rest. `iter_sample` yields an event after every window so a caller can stream
(decode the top level as a preview, then each bottom window as it completes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from collections.abc import Callable, Iterator, Sequence

import torch

from daemon.seeds import seeded_rng

if TYPE_CHECKING:
    from .prior import JukeboxPrior

ProgressCallback = Callable[[int, int], None]  # (tokens done, tokens total)
StopCheck = Callable[[], bool]


class SamplingCancelled(Exception):
    """`should_stop` returned True; the tokens sampled so far are on `music_tokens`."""

    def __init__(self, music_tokens: list[torch.Tensor]):
        super().__init__("sampling cancelled")
        self.music_tokens = music_tokens


@dataclass(frozen=True)
class SamplingParams:
    """The knobs of one sampling call (names as in transformers' Jukebox where one exists)."""

    total_length: int  # samples of the whole piece; sets the tokens per level
    sampling_temperature: float = 0.98  # every level but the bottom
    bottom_temperature: float = 0.99  # the reference fixes the bottom level's temperature at 0.99
    top_k: int = 0  # keep the k most likely tokens (0: off)
    top_p: float = 0.0  # keep the smallest set with this much probability (0: off)
    # the 1b top prior shares one vocabulary between lyrics and music and the reference lets it
    # draw lyric ids at music positions (they become code 0); True draws music codes only
    music_codes_only: bool = False
    hop_fraction: tuple[float, ...] = (0.125, 0.5, 0.5)  # per prior (top first): window hop / n_ctx
    offset: int = 0  # samples: where the piece starts in the song (timing and lyric window)
    max_batch_size: int = 16  # samples per forward pass at the top level
    lower_batch_size: int = 16  # ... at the lower levels
    seed: int | None = None  # None: draw from torch's global generator, like the reference

    def __post_init__(self) -> None:
        if self.total_length <= 0:
            raise ValueError("sample length must be positive")
        if self.sampling_temperature <= 0 or self.bottom_temperature <= 0:
            raise ValueError("temperature must be positive")
        if self.top_k < 0 or not 0.0 <= self.top_p <= 1.0:
            raise ValueError("need top_k >= 0 and 0 <= top_p <= 1")
        if any(not 0.0 < h <= 1.0 for h in self.hop_fraction):
            raise ValueError(f"hop fractions must lie in (0, 1], got {self.hop_fraction}")
        if self.offset < 0 or self.max_batch_size < 1 or self.lower_batch_size < 1:
            raise ValueError("offset must be >= 0 and batch sizes >= 1")


@dataclass(frozen=True)
class WindowSampled:
    """One window of `level` (prior order, 0 = top) finished: tokens [start, end) of that level exist."""

    level: int
    start: int
    end: int
    new_tokens: torch.Tensor  # [B, n] the tokens this window added
    music_tokens: list[torch.Tensor] = field(repr=False)  # all levels so far, prior order
    done_tokens: int = 0
    total_tokens: int = 0
    # The seeded generator's state right after this window (None without a seed): saved with the
    # tokens, it lets a killed render resume here and draw what an uninterrupted one would.
    rng_state: torch.Tensor | None = field(default=None, repr=False)


@dataclass(frozen=True)
class LevelSampled:
    """Every window of `level` is done."""

    level: int
    music_tokens: list[torch.Tensor] = field(repr=False)


def window_starts(total: int, n_ctx: int, hop: int) -> list[int]:
    """Window starts covering `total` tokens; the last window is moved back to end at `total`."""
    return [min(start, total - n_ctx) for start in range(0, total - n_ctx + hop, hop)]


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 0.0) -> torch.Tensor:
    """Set to -inf every logit outside the top k, then outside the nucleus of mass top_p. [..., V]"""
    logits = logits.clone()
    if top_k > 0:
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]
        logits[logits < kth] = -float("inf")
    if top_p > 0.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        mass_before = torch.cumsum(torch.softmax(sorted_logits, dim=-1), dim=-1)
        drop_sorted = mass_before > top_p
        # keep the token that crosses the threshold too
        drop_sorted[..., 1:] = drop_sorted[..., :-1].clone()
        drop_sorted[..., 0] = False
        drop = torch.zeros_like(drop_sorted).scatter_(-1, order, drop_sorted)
        logits[drop] = -float("inf")
    return logits


def draw(
    logits: torch.Tensor, temperature: float, top_k: int, top_p: float, generator: torch.Generator | None
) -> torch.Tensor:
    """Sample one token per row: logits [B, 1, V] -> [B, 1]."""
    logits = filter_logits(logits / temperature, top_k, top_p)
    probs = torch.distributions.Categorical(logits=logits).probs
    flat = probs.reshape(-1, probs.shape[-1])
    return torch.multinomial(flat, 1, True, generator=generator).view(logits.shape[:-1])


@torch.no_grad()
def sample_window(
    prior: JukeboxPrior,
    context: torch.Tensor,
    upper: torch.Tensor | None,
    metadata: torch.Tensor,
    n_positions: int,
    *,
    temperature: float,
    top_k: int = 0,
    top_p: float = 0.0,
    music_codes_only: bool = False,
    generator: torch.Generator | None = None,
    should_stop: StopCheck | None = None,
) -> torch.Tensor:
    """Extend context [B, P] music tokens to n_positions; returns the new tokens [B, n_positions - P].

    The cache belongs to this call: the context is fed in one pass, then one step per token.
    """
    cond = prior.conditioning(upper, metadata)
    sequence = prior.sequence(context, cond)
    target = sequence.shape[1] - context.shape[1] + n_positions
    cache = prior.new_cache(sequence.shape[0])
    if sequence.shape[1] > 0:
        prior.prefill(sequence, cond, cache)
    previous = sequence[:, -1:] if sequence.shape[1] else None
    sampled = []
    while cache.position < target:
        if should_stop is not None and should_stop():
            raise SamplingCancelled([])  # iter_sample re-raises it with the tokens of finished windows
        logits = prior.sampling_step(previous, cond, cache)
        if music_codes_only and prior.music_shift:
            logits[..., : prior.music_shift] = -float("inf")
        previous = draw(logits, temperature, top_k, top_p, generator)
        sampled.append(previous)
    if not sampled:
        return context.new_zeros(context.shape[0], 0)
    return prior.music_from_sequence(torch.cat(sampled, dim=1))


def iter_sample(
    priors: Sequence[JukeboxPrior],
    music_tokens: list[torch.Tensor],
    labels: Sequence[torch.Tensor],
    sample_levels: Sequence[int],
    params: SamplingParams,
    should_stop: StopCheck | None = None,
    progress: ProgressCallback | None = None,
    rng_state: torch.Tensor | None = None,
) -> Iterator[WindowSampled | LevelSampled]:
    """Sample `sample_levels` (prior order) in turn, yielding after each window and level.

    music_tokens: per prior, [B, T_level] tokens that exist already (context; windows they cover
    are skipped). rng_state: resume the seeded generator from a window's `rng_state` rather than
    the seed's start (a checkpointed render). Raises SamplingCancelled (carrying the tokens so
    far) when `should_stop()` turns True.
    """
    tokens = list(music_tokens)
    generator = None
    if params.seed is not None:
        generator = seeded_rng(params.seed, tokens[0].device)
        if rng_state is not None:
            generator.set_state(rng_state)
    plan = _plan(priors, tokens, sample_levels, params)
    total = sum(n for _, windows in plan for *_, n in windows)
    done = 0
    bottom = len(priors) - 1
    for level, windows in plan:
        prior = priors[level]
        temperature = params.bottom_temperature if level == bottom else params.sampling_temperature
        batch_size = params.max_batch_size if level == 0 else params.lower_batch_size
        for start, end, _ in windows:
            have = tokens[level].shape[1]
            context = tokens[level][:, start:have]
            upper = prior.upper_window(tokens[level - 1], start, start + prior.n_ctx) if level > 0 else None
            metadata = prior.window_metadata(labels[level], start, params.total_length, params.offset)
            parts = []
            for rows in torch.arange(context.shape[0]).split(batch_size):
                try:
                    parts.append(
                        sample_window(
                            prior,
                            context[rows],
                            None if upper is None else upper[rows],
                            metadata[rows],
                            end - start,
                            temperature=temperature,
                            top_k=params.top_k,
                            top_p=params.top_p,
                            music_codes_only=params.music_codes_only,
                            generator=generator,
                            should_stop=should_stop,
                        )
                    )
                except SamplingCancelled:
                    raise SamplingCancelled(list(tokens)) from None
            new = torch.cat(parts, dim=0)
            tokens[level] = torch.cat([tokens[level], new], dim=1)
            done += new.shape[1]
            if progress is not None:
                progress(done, total)
            state = generator.get_state() if generator is not None else None
            yield WindowSampled(level, start, end, new, list(tokens), done, total, state)
        yield LevelSampled(level, list(tokens))


def _plan(priors, tokens, sample_levels, params) -> list[tuple[int, list[tuple[int, int, int]]]]:
    """Per level, the windows (start, end, new tokens) that still have tokens to sample.

    A level shorter than one window is one window [0, total). (transformers 4.40.2 added
    `total` tokens to whatever context there was in that case; riffd samples up to `total`,
    as for longer levels. Both agree when sampling from nothing.)
    """
    plan = []
    lengths = [t.shape[1] for t in tokens]  # per level, as they will be when its turn comes
    for level in sample_levels:
        if not 0 <= level < len(priors):
            raise ValueError(f"sample level {level} outside 0..{len(priors) - 1}")
        prior = priors[level]
        total = params.total_length // prior.raw_to_tokens
        if total == 0:
            raise ValueError(f"sample length {params.total_length} is shorter than one token of level {level}")
        if level > 0:
            needed = -(-total // prior.cond_downsample)
            if lengths[level - 1] < needed:
                raise ValueError(
                    f"level {level} needs {needed} tokens of level {level - 1} above it, which will have "
                    f"{lengths[level - 1]}: sample the upper level first (music tokens are in prior order, top first)"
                )
        have = lengths[level]
        if have > total:
            raise ValueError(
                f"level {level} already has {have} tokens, more than the {total} of a {params.total_length}-sample "
                f"piece: is the prime longer than the piece, or are the music tokens not in prior order "
                f"(top first; the VQ-VAE returns them bottom first)?"
            )
        if total >= prior.n_ctx:
            hop = max(1, int(params.hop_fraction[level] * prior.n_ctx))
            spans = [(s, s + prior.n_ctx) for s in window_starts(total, prior.n_ctx, hop)]
        else:
            spans = [(0, total)]
        windows = []
        for start, end in spans:
            if end <= have:
                continue
            if have < start:
                raise ValueError(f"level {level}: a gap between the {have} given tokens and the window at {start}")
            windows.append((start, end, end - have))
            have = end
        lengths[level] = have
        plan.append((level, windows))
    return plan
