"""A long-form job's next window warmed while the current one plays: no prefill at the seam.

Each window after the first restarts from the last `prompt_frames` frames so far (longform.py).
Its prefill of those frames (600 for a 30 s model with an 18 s stride) used to stall the stream
at every seam (~1.6 s native on a 2-core Zen 4). But the next window's context columns are known
one by one while the current window still plays: the delay pattern is the same in both windows,
so the next window's column c is the current window's column c + shift (shift: the frames the
seam drops), with the BOS ramp's codes padded. A step reads the weights once for all the rows it
takes, so the next window rides the current window's steps as rows of its own, a few context
columns every few steps (`RIDE_COLUMNS`, `batch.StepBatch`): when the current window ends, the
next one holds its cache and samples at once.

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
from daemon.models.musicgen.kv_cache import KVCache, move_slots
from daemon.models.musicgen.loader import MusicgenBundle
from daemon.models.musicgen.longform import Window
from daemon.native import NativeUnavailable, int8_matvec

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


#: Context columns a riding step takes (`Warming.due`): k columns every k steps, or one a step. k
#: columns' rows attend over a head's slots in one native task (read from memory once: decoder_step.c's
#: row groups) and share the step's weight reads, but a step's products of 2 + 2k rows are bound by
#: the multipliers, not the weights' bytes, on 2 cores: measured in one process on a 2-core Zen 4
#: (AVX-512 VNNI, bench.ride_columns, stream at 1400 and its next window from 300), the riding
#: self-attention fell from +1.15 ms a column to +0.62 at k = 4, but the mean step over k steps was
#: 0.99x one a step's at k = 2 idle (1.05-1.11x with other work beside), 1.02x at k = 4 (1.07-1.09x)
#: and 1.03x at k = 8, a k = 4 burst step 21.7 ms against 15.3; through the daemon's path
#: (bench.step_account --riding, alternating runs) the window's last 600 steps took 16.2-17.4 ms a
#: step at k = 2 against 14.7-15.9 at k = 1. So one a step there; bench.ride_columns tells where more
#: pays. Where the int8 products of 6 rows or more go through the tile unit (AMX, int8_matvec.c;
#: `int8_matvec.tile_rows()`), they stay bound by the weights' bytes, and TILE_RIDE_COLUMNS ride
#: together (see there). None: by the kernels; a number: that many everywhere (the tests and benches
#: set it).
RIDE_COLUMNS: int | None = None

#: Context columns a riding step takes where the tile unit takes their products (2 + 2k rows, the
#: int8 and int8a8 engines). Measured on the 2-core Intel Xeon (AVX-512 VNNI, AMX), int8+kv4, a
#: stream at 1400 and its next window from 300 (`python -m bench.ride_columns --kernel int8 --columns
#: 2,4,8`, one process): the mean step over k steps 0.977x one a step's at k = 2, 0.970x at 4, 0.946x
#: at 8 (bursts 22.8, 24.9 and 32.0 ms against 21.5); without the tile unit 1.020x and 1.025x. Through
#: the daemon (`python -m bench.realtime --engine int8+kv4`, 60 s jobs, 8 and 4 in turn): rtf 1.200
#: against 1.267 and 1.216 against 1.224. 4: as good, with a burst a third smaller than 8's, and 10
#: rows, within a fused region's 16. 6 and 7 (14 and 16 rows, still one A tile) saved no more: `--columns
#: 4,6,7 --riding 450` 0.933x, 0.934x, 0.933x, bursts 23.5, 26.5, 27.9 ms (a column's attention, norms
#: and activations grow with it, not only the products).
TILE_RIDE_COLUMNS = 4


def ride_columns(decoder: MusicgenDecoder) -> int:
    """Context columns a riding step of `decoder`'s takes (`RIDE_COLUMNS`), read when a window starts warming."""
    if RIDE_COLUMNS is not None:
        return RIDE_COLUMNS
    if decoder.weights.options.weights not in ("int8", "int8a8"):
        return 1  # int4's products (its own kernel) stay VNNI's: more rows cost more there
    try:
        tiles = int8_matvec.tile_rows()
    except NativeUnavailable:
        return 1
    return TILE_RIDE_COLUMNS if 0 < tiles <= 2 + 2 * TILE_RIDE_COLUMNS else 1


#: The riding rows' cache grows in stages of this many positions (0: they ride in the window-sized
#: cache itself). A window-sized cache puts a (row, head)'s slots a whole window apart (kv_cache.py's
#: layout), so a riding row's task, a few hundred positions of each head, reads four new short streams
#: per head, cold; its heads' slots back to back read as longer streams. So the context rides in a view
#: of the window's cache's first bytes laid out for the positions so far (`KVCache.narrowed`), moved to
#: a wider stage as it fills and to the window's layout when the window takes it (`Warming.handed`).
RIDE_STAGE_POSITIONS = 150


def stage_positions(end: int, stage: int, max_positions: int, int8_positions: int) -> int:
    """The positions of the riding stage that holds a window's first `end` slots: whole stages of
    `stage`, at least the int8 head (its rows come first in every layout), at most the window's."""
    return min(max(-(-end // stage) * stage, int8_positions), max_positions)


def stage_view(whole: KVCache, end: int, stage: int) -> KVCache:
    """The cache a next window's context rides in while its first `end` slots fill: a view of its
    window-sized cache `whole` laid out for the stage that holds them (`stage_positions`), or `whole`
    itself where that stage is the window's size or stages are off (`stage` 0)."""
    if stage <= 0:
        return whole
    capacity = stage_positions(end, stage, whole.max_positions, whole.int8_positions)
    return whole if capacity == whole.max_positions else whole.narrowed(capacity)


def _ride_stage() -> int:
    return RIDE_STAGE_POSITIONS  # read when a window starts warming (the tests and bench.path_ab set it)


#: The playing window's own cache grows in stages of this many positions too (0: it steps in the
#: window-sized cache), for the same reason: early in a window a (row, head)'s few slots lie a window
#: apart. Its rows step in `stage_view`s of the window's cache moved on as it fills (`staged_view`),
#: from the riding view a warmed window takes at the seam without a move.
WINDOW_STAGE_POSITIONS = 150


def window_stage() -> int:
    return WINDOW_STAGE_POSITIONS  # read when a window starts (the tests and bench.path_ab set it)


def staged_view(whole: KVCache, view: KVCache, filled: int, end: int, stage: int) -> KVCache:
    """The cache a window's rows step in next, slot `end - 1` the last they write: `view` (`whole` or a
    view of it, its first `filled` slots written) where it is `stage_view`'s for `end`, else that one with
    the slots moved into it (`move_slots`) and `view`'s condition, which may not be `whole`'s: a swap
    between steps (`BatchStream.between_steps`) replaces the cross-attention tensors of the cache its
    rows step in. A view left behind is freed (its native bindings with it); `whole` never is."""
    target = stage_view(whole, end, stage)
    if target.max_positions == view.max_positions:
        return view
    move_slots(view, target, filled)
    share_condition(view, target)
    if view is not whole:
        view.free()
    return target


@dataclass(eq=False)
class Warming:
    """The next window's cache while the current window fills it: the context columns queued to feed
    (the first at `slot`), the columns fed so far, and the cache's owner (`stack`) until a window
    takes it. `columns`: how many queued columns a riding step takes at once (`due`)."""

    next: NextWindow
    cache: KVCache
    stack: ExitStack
    delays: torch.Tensor  # [K] each codebook's delay
    pad_token_id: int
    pending: list[torch.Tensor]  # [B, K] each: the context columns queued, at slots `slot` onwards
    slot: int = 0
    broken: bool = False
    fed: list[torch.Tensor] = field(default_factory=list)
    columns: int = 1  # how many queued columns a riding step takes: `riding` passes `ride_columns`'s
    stage: int = field(default_factory=_ride_stage)
    whole: KVCache | None = None  # the window-sized cache `cache` is a narrowed view of while riding, if any

    @classmethod
    def riding(cls, next: NextWindow, whole: KVCache, stack: ExitStack, delays: torch.Tensor, pad_token_id: int,
               pending: list[torch.Tensor], columns: int) -> "Warming":
        """The next window warming in `whole`, its window-sized cache: its context rides a narrowed view of
        it in stages (`RIDE_STAGE_POSITIONS`), or `whole` itself where stages are off, `columns` at a time
        (`ride_columns`)."""
        warming = cls(next, whole, stack, delays, pad_token_id, pending, columns=columns)
        view = stage_view(whole, 1, warming.stage)
        if view is not whole:
            warming.whole, warming.cache = whole, view
        return warming

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
        if index != self.slot + len(self.pending) or len(self.pending) >= self.columns:
            # Never expected (one column made a step, the queue fed once it holds `columns`): the
            # window after prefills instead.
            log.error("hand-off out of step: context column %d made with slot %d next and %d queued", index,
                      self.slot, len(self.pending))
            self.broken = True
            self.pending = []
            return
        context = column
        if index <= self._longest_delay:
            # Codebook k of column c holds frame c - 1 - delay_k: the BOS ramp's are padding (on a copy:
            # the column is the current window's too). Past the ramp the column itself, as no one
            # writes a made column (a clone cost each riding step ~10-30 us with the caches cold).
            context = column.clone()
            context[:, (index - 1 - self.delays) < 0] = self.pad_token_id
        self.pending.append(context)

    def due(self) -> list[torch.Tensor]:
        """The queued columns the next shared step feeds (at slots `slot` onwards): none until
        `columns` are queued, or the window's last context column is (then what is queued: the next
        window must hold all its context when the current one ends, its last steps few)."""
        queued = len(self.pending)
        if queued and (queued >= self.columns or self.slot + queued == self.context_frames):
            return self.pending
        return []

    def fed_queued(self, count: int) -> None:
        """The first `count` queued columns went into the cache (`due`'s, after the step)."""
        self.fed.extend(self.pending[:count])
        del self.pending[:count]
        self.slot += count

    def make_room(self, count: int) -> None:
        """Before a step feeds `count` columns at `slot`: where they pass the riding cache's end, move what
        it holds to the next stage that has room (never past the window's size)."""
        end = self.slot + count
        if self.whole is None or end <= self.cache.max_positions:
            return
        self.cache = staged_view(self.whole, self.cache, self.slot, end, self.stage)

    def handed(self) -> KVCache:
        """The window-sized cache holding the context, for the window to take: the riding rows' slots
        moved from their stage's layout to the window's (once, a few ms for musicgen-small's 600 frames)."""
        if self.whole is not None and self.cache is not self.whole:
            move_slots(self.cache, self.whole, self.slot)
            self.cache = self.whole
        return self.cache

    def close(self) -> None:
        """Free the cache (no window takes it), its riding view's references too (the window's memory
        goes back as soon as the window's cache is freed)."""
        if self.whole is not None and self.cache is not self.whole:
            self.cache.free()
        self.stack.close()

    def ready_for(self, inputs: torch.Tensor, cond: Conditioning) -> bool:
        """Whether this cache holds exactly the context a prefill of `inputs` `[B, K, P + 1]` under
        `cond` would (all but its last column, which the window's first step feeds)."""
        frames = inputs.shape[-1] - 1
        return (not self.broken and cond is self.next.cond and self.slot == frames == self.context_frames
                and not self.pending and torch.equal(torch.stack(self.fed, dim=-1), inputs[..., :frames]))


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
            warming.close()
