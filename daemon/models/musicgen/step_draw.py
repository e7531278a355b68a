"""A batch's shared step as one native call (`riffd_step_draw`, daemon/native/step_draw.c): every window's
column embedded, the step, and each sampling window's draw from its logits.

These are the very C functions `MusicgenDecoder.step_streams` (the embedding, `riffd_step_rows_out`) and
`loop.next_columns` (`native_sampling.draw`, window by window in its order) call one by one, on the same
inputs in the same order: the same codes and the same generator states, to the bit. What goes is the
Python between them: some twenty torch and ctypes calls a step (buffers, views, checks, the inference
mode), each starting cold after the step's weights streamed through the caches. The buffers and the C
structs are made once for the windows stepping together (kept with their `RowBatch`); a step patches
the columns' addresses, positions, generator states and codes tensors into them.

It takes the common step only: every sampling window native-drawn (no top-p cut, not greedy, not
forced, CPU generators) and every column int64 `[B, K]`. `columns` returns None for any other, before
anything moved, and the batch takes the calls one by one.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from daemon.models.musicgen.decoder import MusicgenDecoder
from daemon.models.musicgen.kv_cache import KVCache
from daemon.models.musicgen.loop import WindowSampler
from daemon.models.musicgen.sampling import guided_codes
from daemon.native import sampling as native_sampling
from daemon.native.decoder_step import DrawStruct, EmbeddingStruct, FeedStruct, NativeModel, RowBatch
from daemon.native.embed import InputEmbedder
from daemon.native.sampling import CODES_AHEAD
from protocol.params import GenerationParams


@dataclass(eq=False)
class _Buffers:
    """What a step of one set of windows (a `RowBatch`) needs, with `drawn` of them sampling: the
    C structs, the input and logits buffers, and each sampling window's draw scratch."""

    rows: list[int]  # each window's rows
    feeds: ctypes.Array[FeedStruct]
    draws: ctypes.Array[DrawStruct]
    x: torch.Tensor  # [rows, hidden]
    logits: torch.Tensor  # [logit_rows, books * vocab]
    logit_rows: int
    x_address: int
    logits_address: int
    logit_starts: list[int]  # each sampling window's first logits row
    scratch: list[native_sampling.DrawScratch]  # each sampling window's draw scratch
    # each draw's window, its sampler, and the settings and generator it was set for
    drawing: list[tuple[int, WindowSampler, GenerationParams, torch.Generator | None] | None]
    # each sampling window's codes tensors made ahead, and the last it drew into (tensor, address, prompts)
    spare: list[list[tuple[torch.Tensor, int, int]]]
    made: list[tuple[torch.Tensor, int, int] | None]


class StepDraw:
    """`columns(caches, columns, positions, samplers)`: one shared step's codes in one native call."""

    def __init__(self, decoder: MusicgenDecoder, model: NativeModel) -> None:
        w = decoder.weights
        self._decoder = decoder
        self._model = model
        self._tables, self._positions = w.embeddings, w.positions  # the addresses below point into them
        self.books, codes_per_book, self.hidden = w.embeddings.shape
        self.vocab = decoder.vocab
        self._embedding = EmbeddingStruct(w.embeddings.data_ptr(), w.positions.data_ptr(), self.books, codes_per_book,
                                          w.positions.shape[0])

    @classmethod
    def build(cls, decoder: MusicgenDecoder) -> StepDraw | None:
        """The one-call step of `decoder`, or None where it cannot run (no native step, its library without
        riffd_step_draw, tables not float32, no native draw that gives this torch's exponentials)."""
        native = decoder.native
        w = decoder.weights
        if (native is None or not hasattr(native.model._functions, "riffd_step_draw")
                or not InputEmbedder.fits(w.embeddings, w.positions) or not native_sampling.draw_runs()
                or native.model.vocab != w.embeddings.shape[0] * decoder.vocab):
            return None
        return cls(decoder, native.model)

    def columns(self, caches: Sequence[KVCache], columns: Sequence[torch.Tensor], positions: Sequence[int],
                samplers: Sequence[WindowSampler]) -> list[torch.Tensor] | None:
        """`MusicgenDecoder.step_streams(caches, columns, positions, logit_windows=len(samplers))` then
        `loop.next_columns`' draws of its first `len(samplers)` windows: window i's codes `[B_i, K]`
        (before the delay pattern: `WindowPattern.column`), fresh tensors; fed back as they are (the
        pattern's column past its ramp), the next step knows them and skips their checks. None where this
        step is not one this call takes; then nothing was stepped or drawn."""
        books = self.books
        native = self._decoder.native
        if native is None or native.model is not self._model:  # the decoder's step changed (tests switch it off)
            return None
        batch = native._batch(caches)
        buffers = batch.kept.get(self)
        if not isinstance(buffers, _Buffers) or len(buffers.scratch) != len(samplers):
            buffers = self._buffers(batch, caches, samplers)
            if buffers is None:
                return None
        if len(columns) != len(buffers.rows):
            return None
        feeds, last = buffers.feeds, buffers.made
        for index, (column, position) in enumerate(zip(columns, positions, strict=True)):
            feed = feeds[index]
            made = last[index] if index < len(last) else None
            if made is not None and column is made[0]:  # the codes this call drew last step, fed as they are
                feed.codes, feed.prompts, feed.position = made[1], made[2], position
                continue
            # The C side reads prompts * books int64 codes there: checked here (a mistake is None), the
            # positions there (against the tables and each row's cache).
            prompts, rows = column.shape[0], buffers.rows[index]
            if (column.dtype != torch.int64 or not column.is_cpu or not column.is_contiguous() or column.dim() != 2
                    or column.shape[1] != books or rows not in (prompts, 2 * prompts)):
                return None
            feed.codes, feed.prompts, feed.position = column.data_ptr(), prompts, position
        # The draws in next_columns' order: the windows sampling alike together, in order of first appearance
        # (it matters only where windows share a generator: torch's default one).
        order = range(len(samplers)) if len(samplers) == 1 else _draw_order(samplers)
        states: dict[int, tuple[torch.Generator, torch.Tensor]] = {}
        codes: list[torch.Tensor | None] = [None] * len(samplers)
        for slot, index in enumerate(order):
            sampler, scratch, draw = samplers[index], buffers.scratch[index], buffers.draws[slot]
            params, rng = sampler.params, sampler.rng
            drawing = buffers.drawing[slot]
            if (drawing is None or drawing[0] != index or drawing[1] is not sampler or drawing[2] is not params
                    or drawing[3] is not rng):  # new here, or a jam's live change
                if not self._takes(sampler, scratch, buffers.rows[index]):
                    return None
                buffers.drawing[slot] = (index, sampler, params, rng)
                draw.logits = buffers.logits_address + 4 * buffers.logit_starts[index] * books * self.vocab
                draw.rows = scratch.rows
                draw.scores, draw.noise, draw.bits, draw.work = scratch.addresses
                draw.guided, draw.top_k, draw.temperature = int(sampler.guided), params.top_k, params.temperature
                draw.guidance = params.guidance_scale if sampler.guided else 1.0
            if sampler.forced is not None:
                return None
            generator = rng if rng is not None else torch.default_generator
            kept = states.get(id(generator))
            if kept is None:
                kept = states[id(generator)] = (generator, generator.get_state())
            spare = buffers.spare[index]
            if not spare:
                spare.extend(_codes_ahead(sampler.batch, books))
            fresh = spare.pop()
            codes[index], last[index] = fresh[0], fresh
            draw.state, draw.codes = kept[1].data_ptr(), fresh[1]
        result = self._model.step_draw(batch, self._embedding, feeds, buffers.logit_rows, buffers.draws,
                                       buffers.x_address, buffers.logits_address, native_sampling.RACE_SLACK)
        if result < 0:
            return None  # a code or a position outside the tables or a cache: the calls one by one say which
        for generator, state in states.values():
            generator.set_state(state)
        if result:
            self._settle(buffers, order, samplers, codes)
        return codes  # each set above

    def _takes(self, sampler: WindowSampler, scratch: native_sampling.DrawScratch, rows: int) -> bool:
        """Whether this call draws `sampler`'s codes as `loop.next_columns` would (natively, on a CPU generator)
        into `scratch`, from its window's `rows` rows of logits; looked at again only when its settings or
        generator change."""
        params = sampler.params
        return (not params.greedy and not 0 < params.top_p < 1 and sampler.vocab == self.vocab
                and scratch.rows == sampler.batch * self.books and rows == (2 if sampler.guided else 1) * sampler.batch
                and native_sampling.on_cpu(sampler.rng if sampler.rng is not None else torch.default_generator))

    def _settle(self, buffers: _Buffers, order: Sequence[int], samplers: Sequence[WindowSampler],
                codes: list[torch.Tensor | None]) -> None:
        """The draws the call left: undecided rows raced by PyTorch on their very exponentials; from a
        window whose scores held a NaN on, the windows drawn by the calls one by one (in the same order)."""
        with torch.inference_mode():
            for slot, index in enumerate(order):
                undecided = buffers.draws[slot].undecided
                made = codes[index]
                assert made is not None
                if undecided > 0:
                    scratch = buffers.scratch[index]
                    native_sampling.finish(made.view(-1), undecided, scratch.scores, scratch.noise, [])
                elif undecided < 0:
                    sampler = samplers[index]
                    start = buffers.logit_starts[index]
                    logits = buffers.logits[start:start + buffers.rows[index]].view(-1, self.books, self.vocab)
                    drawn = guided_codes([sampler.guided_logits(logits)], sampler.params, [sampler.rng])
                    codes[index], buffers.made[index] = drawn.view(sampler.batch, self.books), None

    def _buffers(self, batch: RowBatch, caches: Sequence[KVCache], samplers: Sequence[WindowSampler]) -> _Buffers | None:
        """The step's buffers for `batch` with the first `len(samplers)` windows sampling, kept with the batch."""
        rows = [int(cache.keys[0].shape[0]) for cache in caches]
        drawn = len(samplers)
        if sum(rows) != len(batch) or not 0 < drawn <= len(rows) or any(
                rows[i] != (2 if sampler.guided else 1) * sampler.batch for i, sampler in enumerate(samplers)):
            return None
        x = torch.empty((sum(rows), self.hidden), dtype=torch.float32)
        logits = torch.empty((sum(rows[:drawn]), self.books * self.vocab), dtype=torch.float32)
        buffers = _Buffers(rows, (FeedStruct * len(rows))(*(FeedStruct(None, 0, r, 0) for r in rows)),
                           (DrawStruct * drawn)(), x, logits, logits.shape[0], x.data_ptr(), logits.data_ptr(),
                           [sum(rows[:i]) for i in range(drawn)],
                           [native_sampling.DrawScratch(sampler.batch * self.books, self.vocab) for sampler in samplers],
                           [None] * drawn, [[] for _ in range(drawn)], [None] * drawn)
        batch.kept[self] = buffers
        return buffers


def _codes_ahead(prompts: int, books: int) -> list[tuple[torch.Tensor, int, int]]:
    """Codes tensors `[prompts, books]` int64 for the steps ahead, rows of one allocation (a fresh tensor each
    step cost ~20 us with the caches cold), each with its address; inference tensors, as the calls one by one
    make them. Last first: `pop` hands them out in order."""
    with torch.inference_mode():
        block = torch.empty((CODES_AHEAD, prompts, books), dtype=torch.int64)
    start, each = block.data_ptr(), prompts * books * block.element_size()
    return [(codes, start + i * each, prompts) for i, codes in enumerate(block.unbind(0))][::-1]


def _draw_order(samplers: Sequence[WindowSampler]) -> list[int]:
    """The windows in the order `loop.next_columns` draws them: grouped by their sampling settings."""
    alike: dict[tuple[float, int, float, int], list[int]] = {}
    for index, sampler in enumerate(samplers):
        params = sampler.params
        alike.setdefault((params.temperature, params.top_k, params.top_p, sampler.vocab), []).append(index)
    return [index for members in alike.values() for index in members]
