"""A long-form job's next window warmed while the current one plays: no prefill at the seam.

Each window after the first restarts from the last `prompt_frames` frames so far (longform.py).
Its prefill of those frames (600 for a 30 s model with an 18 s stride) used to stall the stream
at every seam (~1.6 s native on a 2-core Zen 4). But the next window's context columns are known
one by one while the current window still plays: the delay pattern is the same in both windows,
so the next window's column c is the current window's column c + shift (shift: the frames the
seam drops), with the BOS ramp's codes padded. A step reads the weights once for all the rows it
takes, so the next window rides the current window's steps as rows of its own, one context
column a step (`batch.StepBatch`): when the current window ends, the next one holds its cache and
samples at once.

Its cache is filled by the step, not the prefill: approximate engines' step and prefill differ in
their rounding (+kv4 keys are quantised before later positions read them, int8a8 quantises each
row's activations), so the codes after a seam are the step's, within the agreement
`bench.handoff_agreement` measures. Every path of a job (batched or not) hands off alike, so a
seeded job's codes do not depend on who else plays. float32 engines, the Python step and melody
prefixes keep the prefill (`hands_off`).
"""

from __future__ import annotations

import functools
import logging
from contextlib import ExitStack
from dataclasses import dataclass, field

import torch

from daemon.models.musicgen.conditioning import Conditioning
from daemon.models.musicgen.decoder import MusicgenDecoder
from daemon.models.musicgen.delay import delay_steps
from daemon.models.musicgen.kv_cache import KVCache
from daemon.models.musicgen.loader import MusicgenBundle
from daemon.models.musicgen.longform import Window

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NextWindow:
    """The window after the current one, as the current one warms it."""

    window: Window
    shift: int  # its frame j is the current window's frame j + shift (so its column c the current's c + shift)
    cond: Conditioning


def seam_shift(current: Window, following: Window) -> int | None:
    """Frames the seam between two windows drops, when `following`'s context columns all come
    from `current`'s steps (not from its own prompt, which its prefill fed): else None."""
    shift = current.prompt_frames + current.new_frames - following.prompt_frames
    # The first context column past BOS (1 + shift) must be one `current` samples after its step 0
    # (its step 0's may come from its prefill, outside the shared steps).
    return shift if shift > current.prompt_frames else None


def cache_positions(window: Window, bundle: MusicgenBundle) -> int:
    """Cache slots a window without a melody prefix takes (`loop.plan_window`'s first slot plus its steps, less one)."""
    return window.prompt_frames + window.new_frames + delay_steps(bundle.num_codebooks, bundle.audio_channels)


def share_condition(source: KVCache, cache: KVCache) -> None:
    """`cache` attends to what `source` does (the same cross-attention tensors, never written by a step)."""
    cache.cross_keys, cache.cross_values = list(source.cross_keys), list(source.cross_values)
    cache.cross_mask = source.cross_mask
    cache.condition_version += 1


def hands_off(decoder: MusicgenDecoder, cond: Conditioning | None) -> bool:
    """Whether a job's windows hand off on this decoder: the native step (approximate engines; its
    rows are independent, so the next window's rows leave the current's bits alone) and a text or
    unconditional condition (a melody's prefix enters with the prefill)."""
    return decoder.native is not None and cond is not None and not cond.prefix


@dataclass(eq=False)
class Warming:
    """The next window's cache while the current window fills it: the column it feeds next (at
    `slot`), the columns fed so far, and the cache's owner (`stack`) until a window takes it."""

    next: NextWindow
    cache: KVCache
    stack: ExitStack
    delays: torch.Tensor  # [K] each codebook's delay
    pad_token_id: int
    pending: torch.Tensor | None  # [B, K] the context column the next shared step feeds
    slot: int = 0
    broken: bool = False
    fed: list[torch.Tensor] = field(default_factory=list)

    @functools.cached_property
    def _longest_delay(self) -> int:
        """The largest codebook delay: columns past it hold no BOS ramp (as an int, read every step)."""
        return int(self.delays.max())

    @property
    def context_frames(self) -> int:
        return self.next.window.prompt_frames

    def offer(self, made_column: int, column: torch.Tensor) -> None:
        """The current window made its sequence column `made_column` `[B, K]`: queue it as this
        window's context column, if it is one (called by the stepping thread after a step)."""
        index = made_column - self.next.shift
        if self.broken or not 1 <= index < self.context_frames:
            return
        if self.pending is not None or index != self.slot:
            # Never expected (one column made and one fed a step): the window after prefills instead.
            log.error("hand-off out of step: context column %d made with slot %d next", index, self.slot)
            self.broken, self.pending = True, None
            return
        context = column
        if index <= self._longest_delay:
            # Codebook k of column c holds frame c - 1 - delay_k: the BOS ramp's are padding (on a copy:
            # the column is the current window's too). Past the ramp the column itself, as no one
            # writes a made column (a clone cost each riding step ~10-30 us with the caches cold).
            context = column.clone()
            context[:, (index - 1 - self.delays) < 0] = self.pad_token_id
        self.pending = context

    def fed_one(self) -> None:
        assert self.pending is not None
        self.fed.append(self.pending)
        self.pending = None
        self.slot += 1

    def ready_for(self, inputs: torch.Tensor, cond: Conditioning) -> bool:
        """Whether this cache holds exactly the context a prefill of `inputs` `[B, K, P + 1]` under
        `cond` would (all but its last column, which the window's first step feeds)."""
        frames = inputs.shape[-1] - 1
        return (not self.broken and cond is self.next.cond and self.slot == frames == self.context_frames and self.pending is None
                and torch.equal(torch.stack(self.fed, dim=-1), inputs[..., :frames]))


class Handoff:
    """A job's hand-off across its windows: the next window being warmed (owned here until that
    window takes its cache), freed by `close` if the job ends first."""

    def __init__(self) -> None:
        self.warming: Warming | None = None  # warmed by the window before, for the window after it

    def take(self) -> Warming | None:
        warming, self.warming = self.warming, None
        return warming

    def close(self) -> None:
        """Free a warmed cache no window took (the job stopped or failed at a seam)."""
        warming = self.take()
        if warming is not None:
            warming.stack.close()
