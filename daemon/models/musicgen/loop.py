"""The one column loop of a window: guidance, sampling, the delay pattern, stopping.

`WindowSampler` turns a step's logits into the column the window writes (its own pattern,
sampling settings, guidance scale and random generator); `iter_window` runs it against any
source of logits. Plain decoding (`decoder_columns`), transformers' reference decoder
(`reference_columns`), the agreement check (forced columns) and speculative decoding
(`speculative.py`, which drafts and checks with the same sampler) all go through here, and so
does each stream of a batch (`batch.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from daemon.models.musicgen.conditioning import Conditioning
from daemon.models.musicgen.decoder import MusicgenDecoder
from daemon.models.musicgen.delay import WindowPattern
from daemon.models.musicgen.loader import MusicgenBundle
from daemon.models.musicgen.sampling import apply_guidance, distribution, draw, guided_codes, sample_next
from protocol.errors import Cancelled
from protocol.params import GenerationParams

#: Feeds step `step`'s column `[B, K]` to the model; returns the logits `[N, K, V]` for the next.
FeedFn = Callable[[int, torch.Tensor], torch.Tensor]
StopFn = Callable[[], bool]


@dataclass
class WindowSampler:
    """Per-window rules from logits to columns; nothing here touches a model."""

    pattern: WindowPattern
    batch: int  # B prompts (N = 2B rows under guidance)
    num_codebooks: int
    vocab: int
    guided: bool
    params: GenerationParams
    rng: torch.Generator | None
    # Teacher forcing (the agreement check): columns `[B, K, steps]` to write whatever the scores say.
    forced: torch.Tensor | None = None

    @property
    def steps(self) -> int:
        return self.pattern.steps

    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        """Guided scores `[B * K, V]` from one step's logits `[N, K, V]` (conditional and null halves combined)."""
        flat = logits.reshape(-1, self.vocab)
        return apply_guidance(flat, self.params.guidance_scale) if self.guided else flat

    def draw(self, scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Codes `[B * K]` drawn from `scores`, and the distribution they came from (None when greedy)."""
        if self.params.greedy:
            return scores.argmax(dim=-1), None
        probs = distribution(scores, self.params)
        return draw(probs, self.rng), probs

    def column(self, step: int, codes: torch.Tensor, *, owned: bool = False) -> torch.Tensor:
        """Column `step` of the window from codes `[B * K]`: the delay pattern and the prompt forced
        (`owned`: the codes are the caller's to give away, `WindowPattern.column`)."""
        return self.pattern.column(step, codes.view(self.batch, self.num_codebooks), owned=owned)

    def next_column(self, step: int, logits: torch.Tensor) -> torch.Tensor:
        """The column `[B, K]` step `step` writes, given the logits before it."""
        if self.forced is not None:
            return self.forced[..., step]
        if self.params.greedy:
            return self.column(step, sample_next(self.scores(logits), self.params, self.rng))
        return self.column(step, guided_codes([self.guided_logits(logits)], self.params, [self.rng]))

    def guided_logits(self, logits: torch.Tensor) -> tuple[torch.Tensor, float | None]:
        """One step's logits `[N, K, V]` as `guided_distribution` takes a window's: `[N * K, V]` and the
        guidance scale (None when unguided)."""
        return logits.reshape(-1, self.vocab), self.params.guidance_scale if self.guided else None


def next_columns(samplers: Sequence[WindowSampler], steps: Sequence[int],
                 logits: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """`samplers[i].next_column(steps[i], logits[i])` for the streams of one shared step: the very
    same columns, but the distributions of streams that sample alike (temperature, top-k, top-p)
    made in one pass over all their rows and raced in one (each row's arithmetic is its own: the
    same bits); only the random draws, each from its stream's own generator, go stream by stream."""
    made: list[torch.Tensor | None] = [None] * len(samplers)
    alike: dict[tuple[float, int, float, int, torch.dtype], list[int]] = {}
    for index, (sampler, step, out) in enumerate(zip(samplers, steps, logits, strict=True)):
        if sampler.forced is not None or sampler.params.greedy:
            made[index] = sampler.next_column(step, out)
        else:
            params = sampler.params
            alike.setdefault((params.temperature, params.top_k, params.top_p, sampler.vocab, out.dtype),
                             []).append(index)
    for members in alike.values():
        codes = guided_codes([samplers[i].guided_logits(logits[i]) for i in members], samplers[members[0]].params,
                             [samplers[i].rng for i in members])
        # The codes are this call's own (guided_codes makes them afresh), so a stream's column may be
        # its rows of them.
        if len(members) == 1:  # a stream alone (the common case): no split
            made[members[0]] = samplers[members[0]].column(steps[members[0]], codes, owned=True)
            continue
        sizes = [samplers[i].batch * samplers[i].num_codebooks for i in members]
        for index, rows in zip(members, codes.split(sizes), strict=True):
            made[index] = samplers[index].column(steps[index], rows, owned=True)
    return [column for column in made if column is not None]


def iter_window(sampler: WindowSampler, logits: torch.Tensor, feed: FeedFn, should_stop: StopFn | None,
                on_logits: Callable[[torch.Tensor], None] | None = None) -> Iterator[torch.Tensor]:
    """Yield each column `[B, K]` of a window, starting from the prefill's `logits`."""
    for step in range(sampler.steps):
        if on_logits is not None:
            on_logits(logits)
        # 1. guidance, 2. sample, 3. force the delay pattern (BOS ramp, prompt, pad after the end)
        column = sampler.next_column(step, logits)
        yield column
        check_stop(should_stop)
        # 4. feed the column back, unless it was the window's last
        if step + 1 < sampler.steps:
            logits = feed(step, column)


def check_stop(should_stop: StopFn | None) -> None:
    if should_stop is not None and should_stop():
        raise Cancelled("generation cancelled")


def plan_window(bundle: MusicgenBundle, cond: Conditioning, prompt: torch.Tensor | None,
                new_frames: int) -> tuple[WindowPattern, int]:
    """The window's delay pattern, and the cache slot of its first sampled column (after any melody prefix)."""
    pattern = WindowPattern.plan(prompt, cond.batch_size, bundle.num_codebooks, bundle.audio_channels, new_frames,
                                 bundle.pad_token_id, bundle.device)
    prefix = cond.hidden_states.shape[1] if cond.prefix else 0
    return pattern, prefix + pattern.inputs.shape[-1]


def window_sampler(bundle: MusicgenBundle, cond: Conditioning, pattern: WindowPattern, params: GenerationParams,
                   rng: torch.Generator | None, vocab: int, forced: torch.Tensor | None = None) -> WindowSampler:
    return WindowSampler(pattern, cond.batch_size, bundle.num_codebooks, vocab, cond.guided, params, rng, forced)


def decoder_columns(decoder: MusicgenDecoder, bundle: MusicgenBundle, cond: Conditioning, prompt: torch.Tensor | None,
                    new_frames: int, params: GenerationParams, rng: torch.Generator | None,
                    should_stop: StopFn | None = None) -> Iterator[torch.Tensor]:
    """Each new sequence column `[B, K]` of a window, decoded by `decoder`; the cache is freed
    when the iterator ends or is closed."""
    pattern, first_slot = plan_window(bundle, cond, prompt, new_frames)
    sampler = window_sampler(bundle, cond, pattern, params, rng, decoder.vocab)
    with decoder.open_cache(cond.hidden_states.shape[0], first_slot + pattern.steps - 1) as cache:
        logits = decoder.prefill(cache, cond, pattern.inputs)  # [N, K, V]
        yield from iter_window(sampler, logits, lambda step, column: decoder.step(cache, column, first_slot + step),
                               should_stop)


@torch.inference_mode()
def reference_columns(bundle: MusicgenBundle, cond: Conditioning, prompt: torch.Tensor | None, new_frames: int,
                      params: GenerationParams, rng: torch.Generator | None,
                      should_stop: StopFn | None = None) -> Iterator[torch.Tensor]:
    """The same columns from transformers' own decoder and cache: the float32 reference the
    engine is checked against (`MusicGen(engine=None)`)."""
    batch, num_codebooks = cond.batch_size, bundle.num_codebooks
    pattern = WindowPattern.plan(prompt, batch, num_codebooks, bundle.audio_channels, new_frames, bundle.pad_token_id,
                                 bundle.device)
    decoder = bundle.model.decoder
    past: Any = None

    def run(ids: torch.Tensor, first: bool) -> torch.Tensor:
        nonlocal past
        flat = ids.reshape(batch * num_codebooks, -1)
        if cond.guided:
            flat = flat.repeat(2, 1)
        # Prefix conditioning (melody) enters once, with the first step; cross-attention every step.
        states = cond.hidden_states if (first or not cond.prefix) else None
        out = decoder(input_ids=flat, encoder_hidden_states=states, encoder_attention_mask=cond.attention_mask,
                      past_key_values=past, use_cache=True)
        past = out.past_key_values
        logits: torch.Tensor = out.logits[:, -1, :].float()  # [N * K, V]
        return logits.view(-1, num_codebooks, logits.shape[-1])  # [N, K, V]

    vocab = int(decoder.config.vocab_size)
    sampler = window_sampler(bundle, cond, pattern, params, rng, vocab)
    yield from iter_window(sampler, run(pattern.inputs, True), lambda step, column: run(column[..., None], False),
                           should_stop)
