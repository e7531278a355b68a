"""riffd's MusicGen decoder: prefill, extend and step over window caches. No sampling here.

Rows are batch-first: a window of B prompts has N = B rows, or 2B under guidance (conditional
rows first, then null). The step runs the weights of `DecoderWeights` against a fixed-shape
key/value cache written in place, in one of three ways chosen at load: riffd's native int8/int4 step
(one C call), a compiled fixed-shape step (GPUs), or the eager Python step.

`step_streams` advances several windows (streams) in one step: what continuous batching
shares. Each stream's logits are exactly those of `step` on that stream alone (see `_project`).
Where the native step does not run, windows may live in a slot arena (`enable_arena`, arena.py):
then one fixed-shape step runs every stream's rows together.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

import torch
import torch.nn.functional as F

from daemon.models.musicgen.arena import BINDING, SlotArena
from daemon.models.musicgen.condition_precision import CrossProjection, project
from daemon.models.musicgen.conditioning import Conditioning
from daemon.models.musicgen.graphed_step import CudaGraph, Graph, GraphedCaches
from daemon.models.musicgen.kv_cache import PACKED4, KVCache, int8_head
from daemon.models.musicgen.native_step import NativeStep
from daemon.models.musicgen.options import NATIVE_FORMATS
from daemon.models.musicgen.speed import DenseLinear, Int4Linear, Int8Linear, Linear
from daemon.models.musicgen.weights import DecoderWeights, LayerWeights
from daemon.native import gelu, huge_pages, prefill_attention
from daemon.native.embed import InputEmbedder

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _inference(method: Callable[_P, _R]) -> Callable[_P, _R]:
    """`method` under `torch.inference_mode`, entered only where the caller has not: a step's callers
    (the batch's shared step, `step` itself) hold it already, and entering and leaving it again cost
    ~10-20 us a call (a decode step's Python is ~0.8 ms in all)."""
    @functools.wraps(method)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        if torch.is_inference_mode_enabled():
            return method(*args, **kwargs)
        with torch.inference_mode():
            return method(*args, **kwargs)
    return wrapper

log = logging.getLogger(__name__)

#: With a compiled step, cache lengths and cross-attention lengths are rounded up to these, so a
#: new prompt or duration reuses a compiled graph instead of compiling another (a compile costs
#: tens of seconds: 20-25 s on an H100; masked padding costs next to nothing). Caches come in two
#: lengths: up to POSITION_BUCKET slots (jobs up to ~5 s, the warm-up's), else the model's whole
#: position table (every longer job and long-form window), so two shapes cover every job and both are
#: compiled and captured at load (`MusicgenEngine.warm_up`) instead of in a job's first window. Text
#: prompts rarely pass 128 tokens.
POSITION_BUCKET = 256
CROSS_BUCKET = 128


class MusicgenDecoder:
    """The decoder of one checkpoint in one engine mode; thread-compatible (one step at a time)."""

    def __init__(self, weights: DecoderWeights, device: torch.device, *, model_id: str = "") -> None:
        self.weights = weights
        self.device = device
        self.compiled = weights.options.compile
        self._live_caches = 0
        # int8, int8a8 and int4 on the CPU: the whole step in one native call, when riffd's kernels run
        # here. Its self-attention cache holds int8 vectors with a scale each: a quarter of float32's bytes.
        native = weights.options.weights in NATIVE_FORMATS and not self.compiled
        self.native = NativeStep.build(weights, device) if native else None
        self.cache_dtype = NativeStep.CACHE_DTYPE if self.native is not None else weights.dtype
        if weights.options.kv4:  # both steps read and write the packed 4-bit layout
            self.cache_dtype = PACKED4
        if native:
            log.info("%s %s engine: %s", model_id, weights.options.weights, "riffd's native decode step"
                     if self.native is not None else "PyTorch's kernels (riffd's native step cannot run these weights here)")
        self._masked_step = self._step_masked
        self._flat_embeddings: torch.Tensor | None = None  # `_native_inputs`' view of the tables, made once
        self._book_offsets = torch.zeros(0, dtype=torch.long)
        self._embedder: InputEmbedder | None = None  # `_native_inputs`' native call, where it runs
        self._graphs: GraphedCaches | None = None
        if device.type == "cuda" and hasattr(torch.backends.cuda, "enable_cudnn_sdp"):
            # cuDNN's attention builds an execution plan for every new key length, and a decode step's
            # keys grow by one a step: bfloat16 and float16 steps (which it takes; float32 it does not)
            # ran at 55-59 ms on an H100 against float32's 8.7. PyTorch's flash and memory-efficient
            # kernels take any length. Process-wide: the daemon's attention is all here.
            torch.backends.cuda.enable_cudnn_sdp(False)
        self.arena: SlotArena | None = None  # every window's slots in one buffer, where enabled (enable_arena)
        if self.compiled:
            if device.type == "cpu":
                log.warning("compiling the decode step on the CPU: measured slower than eager there "
                            "(bench.musicgen_stream); it pays off on GPUs")
            # Fused kernels; on a GPU the step is then captured as a CUDA graph by riffd (graphed_step.py),
            # not by torch.compile's "reduce-overhead", which skips graphs that write into their inputs.
            self._masked_step = torch.compile(self._step_masked, fullgraph=True, dynamic=False)
            if device.type == "cuda":
                self.use_graphs(CudaGraph)

    def use_graphs(self, make_graph: Callable[[], Graph]) -> None:
        """Replay the compiled step from graphs made by `make_graph` (`CudaGraph` on a GPU, which the
        decoder does itself; tests give a stand-in), on window caches kept for reuse."""
        assert self.compiled, "graphs replay the compiled, fixed-shape step"
        self._graphs = GraphedCaches(self._allocate, make_graph)

    @property
    def vocab(self) -> int:
        return self.weights.vocab

    @property
    def live_caches(self) -> int:
        """Windows whose cache is allocated right now (0 once every stream ended or was stopped)."""
        return self._live_caches

    def enable_arena(self, rows: int, positions: int, *, graphs: bool | None = None) -> SlotArena | None:
        """Open windows in a slot arena of `rows` rows and `positions` slots (rounded up to
        `POSITION_BUCKET`), allocated now: one step for every window in it (arena.py). None, with a
        log line, where it cannot serve: the native step (its own layout, its rows independent already)
        or a quantised cache. `graphs`: its step replayed from CUDA graphs captured now (None: on a GPU)."""
        if self.native is not None or not self.cache_dtype.is_floating_point:
            log.info("no slot arena: %s", "riffd's native step batches its rows itself" if self.native is not None
                     else f"its {self.cache_dtype} cache is quantised")
            return None
        positions = self._arena_positions(positions)
        self.arena = SlotArena(self.weights, self.device, rows=rows, positions=positions, cross_len=CROSS_BUCKET,
                               position_bucket=POSITION_BUCKET, dtype=self.cache_dtype, compiled=self.compiled)
        if graphs if graphs is not None else self.device.type == "cuda":
            started = time.perf_counter()
            try:
                self.arena.use_graphs(CudaGraph)
                log.info("slot arena: its step captured as CUDA graphs in %.1f s", time.perf_counter() - started)
            except RuntimeError as exc:  # e.g. another thread's work on the device met the capture
                self.arena.drop_graphs()
                log.warning("slot arena: no CUDA graphs (%s); its step runs eagerly", exc)
        log.info("slot arena: %d rows of %d positions, %.0f MiB on %s", rows, positions, self.arena.nbytes / 2**20,
                 self.device)
        return self.arena

    def arena_row_bytes(self, positions: int) -> int:
        """Bytes a row of an arena of `positions` slots would take (`enable_arena`'s rounding)."""
        return SlotArena.row_bytes(self.weights, self._arena_positions(positions), CROSS_BUCKET, self.cache_dtype)

    def _arena_positions(self, positions: int) -> int:
        """An arena's slots for windows of `positions`: whole buckets, at most the model's positions."""
        return min(-(-positions // POSITION_BUCKET) * POSITION_BUCKET, self.weights.max_positions)

    def cache_bytes(self, rows: int, positions: int, cross_len: int) -> int:
        """Bytes a window cache of `rows` rows and `positions` slots takes (for admission control);
        for a window the arena can hold, its rows' share of the arena (allocated already, bounded)."""
        w = self.weights
        if self.arena is not None and self.arena.fits(rows, positions) and cross_len <= self.arena.cross_len:
            return rows * self.arena.nbytes // self.arena.rows
        if self.cache_dtype == PACKED4:
            # two codes a byte and a float16 scale; the window's int8 head takes as much again a position
            # (a byte a code, a float32 scale)
            self_attention = (positions + int8_head(positions)) * (w.head_dim // 2 + 2)
        else:
            slot = w.head_dim * torch.tensor([], dtype=self.cache_dtype).element_size()
            if self.cache_dtype == torch.int8:
                slot += 4  # the float32 scale of each vector
            self_attention = positions * slot
        cross = cross_len * w.head_dim * torch.tensor([], dtype=w.dtype).element_size()
        return len(w.layers) * rows * w.heads * 2 * (self_attention + cross)  # keys and values alike

    # Caches and conditions.
    @contextmanager
    def open_cache(self, rows: int, positions: int) -> Iterator[KVCache]:
        """A window's cache of `rows` rows and `positions` slots, freed when the block (or the
        generator holding it) ends."""
        if positions > self.weights.max_positions:
            raise ValueError(f"window needs {positions} positions, the model has {self.weights.max_positions}")
        with self._window_cache(rows, positions) as cache:
            self._live_caches += 1
            try:
                yield cache
            finally:
                self._live_caches -= 1

    @contextmanager
    def _window_cache(self, rows: int, positions: int) -> Iterator[KVCache]:
        """Where a window's cache comes from: its rows of the slot arena where it fits there, else a cache
        the compiled step keeps with its graph, else buffers of its own."""
        arena = self.arena
        taken = arena.take(rows) if arena is not None and arena.fits(rows, positions) else None
        if arena is not None and taken is None:
            log.info("a window of %d rows and %d positions does not fit the slot arena now (%d of %d rows free, "
                     "%d positions): it steps on its own", rows, positions, arena.free_rows, arena.rows,
                     arena.positions)
        if arena is not None and taken is not None:
            cache = arena.view(taken, positions)
            try:
                yield cache
            finally:
                cache.free()
                arena.give(taken)
            return
        if self.compiled:
            positions = POSITION_BUCKET if positions <= POSITION_BUCKET else self.weights.max_positions
        if self._graphs is not None:
            with self._graphs.open(rows, positions) as cache:
                yield cache
            return
        cache = self._allocate(rows, positions)
        try:
            yield cache
        finally:
            cache.free()

    def _allocate(self, rows: int, positions: int) -> KVCache:
        """A window cache's own buffers (zeroed for the compiled step, which reads them whole, masked)."""
        w = self.weights
        return KVCache.allocate(layers=len(w.layers), batch=rows, heads=w.heads, head_dim=w.head_dim,
                                max_positions=positions, dtype=self.cache_dtype, device=self.device,
                                zeroed=self.compiled)

    def reserve_caches(self, rows: int, positions: int, count: int) -> None:
        """Have `count` windows' caches of `rows` rows and `positions` slots ready in faulted-in huge
        pages (huge_pages.reserve), so that opening them later waits for no page faults or the
        kernel's compaction: for the warm-up, ahead of a job's first window and its next."""
        w = self.weights
        if self.device.type != "cpu" or positions > w.max_positions:
            return
        specs = KVCache.buffer_specs(layers=len(w.layers), batch=rows, heads=w.heads, head_dim=w.head_dim,
                                     max_positions=positions, dtype=self.cache_dtype)
        huge_pages.reserve(huge_pages.buffers_bytes(specs), count)

    @torch.inference_mode()
    def set_condition(self, cache: KVCache, cond: Conditioning, *, same_states: bool = False) -> None:
        """Cross-attention keys and values of `cond` into `cache`, replacing what it held.

        Called by `prefill`; call it between two steps to change what a running window attends
        to (a jam's new prompt). `cond` must have the cache's rows; its text length may differ.
        `same_states`: `cond` has the hidden states the cache's keys came from and differs only in
        its mask or attention bias (a jam's prompt weights), so only the mask is made again.
        """
        if cond.prefix:
            raise ValueError("a melody condition is a prefix of the input: it is set by prefill, not swapped")
        states, mask, bias = cond.hidden_states, cond.attention_mask, cond.attention_bias
        if cache.keys and states.shape[0] != cache.keys[0].shape[0]:
            raise ValueError(f"condition has {states.shape[0]} rows, the cache {cache.keys[0].shape[0]}")
        if self.compiled:
            # Pad to a bucket (masked) so prompts of other lengths reuse the compiled step.
            padded = -(-states.shape[1] // CROSS_BUCKET) * CROSS_BUCKET
            extra = padded - states.shape[1]
            if extra:
                if mask is None:
                    mask = torch.ones(states.shape[:2], dtype=torch.long, device=states.device)
                states = F.pad(states, (0, 0, 0, extra))
                mask = F.pad(mask, (0, extra))
                bias = F.pad(bias, (0, extra)) if bias is not None else None
        n, s, _ = states.shape
        w = self.weights
        if same_states:
            if not cache.cross_keys or cache.cross_keys[0].shape[2] != s:
                raise ValueError("same_states: the cache holds no keys of states this long")
        else:
            # The null condition's rows (guidance's second half) are all zeros, and so are their keys
            # and values (the projections have no bias): only the other rows are multiplied, half
            # the work of a guided window's prefill, which a job joining a busy batch waits for.
            # They are picked once and each result is copied once, straight into the cache's
            # [N, heads, S, head_dim] layout: with 48 projections, indexing and fresh buffers
            # per projection took about as long as the int8 products themselves.
            live = states.flatten(1).ne(0).any(dim=1)
            rows = None if bool(live.all()) else live.nonzero()[:, 0]
            conditioned = states if rows is None else states[rows]
            nulls = None if rows is None else (~live).nonzero()[:, 0]
            keys: list[torch.Tensor] = []
            values: list[torch.Tensor] = []
            if w.cross_kv is not None:
                keys, values = self._stacked_cross_heads(conditioned, w.cross_kv, rows, nulls, n)
            else:
                for layer in w.layers:
                    assert layer.cross_k is not None and layer.cross_v is not None
                    for out, weight in ((keys, layer.cross_k), (values, layer.cross_v)):
                        out.append(self._cross_heads(conditioned, weight, rows, nulls, n))
            cache.cross_keys, cache.cross_values = keys, values
        cross_mask = None
        if (mask is not None and not bool(mask.all())) or bias is not None:
            blocked = mask == 0 if mask is not None else torch.zeros(states.shape[:2], dtype=torch.bool,
                                                                      device=states.device)
            # A row with nothing visible (the null condition) has all-zero states, so zero keys and
            # values (the projections have no bias): leave it unmasked rather than risk -inf rows in half precision.
            blocked = (blocked & ~blocked.all(dim=-1, keepdim=True))[:, None, None, :]
            cross_mask = torch.zeros(blocked.shape, dtype=w.dtype, device=states.device)
            if bias is not None:  # a jam's prompt weights: each prompt's share of the attention
                cross_mask += bias[:, None, None, :].to(w.dtype)
            cross_mask.masked_fill_(blocked, torch.finfo(w.dtype).min)
        cache.cross_mask = cross_mask
        cache.condition_version += 1

    def _cross_heads(self, conditioned: torch.Tensor, weight: CrossProjection, rows: torch.Tensor | None,
                     nulls: torch.Tensor | None, n: int) -> torch.Tensor:
        """Keys (or values) `[n, heads, S, head_dim]` of the `conditioned` states `[R, S, H_cond]`:
        rows `rows` of the n (None: all), the `nulls` zero. In the weights' precision (bfloat16 or
        int8 for approximate engines where faster), then the activations' dtype."""
        w = self.weights
        r, s = conditioned.shape[0], conditioned.shape[1]
        heads = project(conditioned, weight).view(r, s, w.heads, w.head_dim).transpose(1, 2).to(w.dtype) if r else None
        if rows is None:
            assert heads is not None
            return heads.contiguous()
        full = torch.empty((n, w.heads, s, w.head_dim), dtype=w.dtype, device=conditioned.device)
        if heads is not None:
            full.index_copy_(0, rows, heads)
        assert nulls is not None
        return full.index_fill_(0, nulls, 0)

    def _stacked_cross_heads(self, conditioned: torch.Tensor, stacked: CrossProjection, rows: torch.Tensor | None,
                             nulls: torch.Tensor | None, n: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Every layer's keys and values (as `_cross_heads` makes each) from one product by the
        stacked projections (`DecoderWeights.cross_kv`), and one copy into a block the cache's
        tensors are views of: the same bits, without 48 products' and copies' overheads."""
        w = self.weights
        r, s = conditioned.shape[0], conditioned.shape[1]
        count = (stacked.shape[0] if isinstance(stacked, torch.Tensor) else stacked.out_features) // w.hidden
        # Not in huge pages (as the self-attention slots are): 0.309 -> 0.283 ms a step, and a mapping
        # of its own at window open would compact memory or take a spare meant for a window's slots.
        full = torch.empty((count, n, w.heads, s, w.head_dim), dtype=w.dtype, device=conditioned.device)
        if r:
            heads = project(conditioned, stacked).view(r, s, count, w.heads, w.head_dim).permute(2, 0, 3, 1, 4)
            if rows is None:
                full.copy_(heads)
            elif bool((rows == torch.arange(r, device=rows.device)).all()):  # the usual: prompts first, nulls after
                full[:, :r].copy_(heads)
            else:
                full.index_copy_(1, rows, heads.to(w.dtype))
        if nulls is not None:
            full.index_fill_(1, nulls, 0)
        parts = full.unbind(0)
        return list(parts[0::2]), list(parts[1::2])

    def prefill_is_step(self, cond: Conditioning, inputs: torch.Tensor) -> bool:
        """Whether `prefill(cache, cond, inputs)` is `set_condition` then `step(cache, inputs[..., 0], 0)`.

        So it is with the native step for a text prompt's window, which knows only its first column:
        one native call instead of the Python layers' hundreds of small ops (each of which waits for
        the GIL again when other jobs' threads are busy). A batch then makes that step part of its
        shared step (`batch.StepBatch.columns`)."""
        return self.native is not None and not cond.prefix and inputs.shape[-1] == 1

    # The three entry points.
    @torch.inference_mode()
    def prefill(self, cache: KVCache, cond: Conditioning, inputs: torch.Tensor) -> torch.Tensor:
        """Run the known columns `[B, K, T]` (and a melody prefix); fill the cache; logits `[N, K, V]` of the last."""
        if self.prefill_is_step(cond, inputs):
            self.set_condition(cache, cond)
            return self.step(cache, inputs[..., 0], 0)
        tokens = inputs.repeat(2, 1, 1) if cond.guided else inputs  # [N, K, T]
        x = self._embed(tokens)  # [N, T, H]
        if cond.prefix:
            x = torch.cat([cond.hidden_states.to(x.dtype), x], dim=1)
        else:
            self.set_condition(cache, cond)
        length = x.shape[1]
        x = x + self.weights.positions[:length]
        positions = torch.arange(length, device=x.device)
        for index, layer in enumerate(self.weights.layers):
            x = self._layer(layer, x, cache, index, positions, length, None, True)
        return self._logits(x[:, -1:])[:, 0]

    @torch.inference_mode()
    def extend(self, cache: KVCache, columns: torch.Tensor, start: int) -> torch.Tensor:
        """Teacher-force known columns `[B, K, T]` at slots `start`.. in one pass; logits `[N, T, K, V]` after each.

        The weights are read once for all T columns: what makes checking drafted columns cheap.
        """
        tokens = self._tokens(cache, columns)
        length = tokens.shape[-1]
        x = self._embed(tokens) + self.weights.positions[start:start + length]
        positions = torch.arange(start, start + length, device=x.device)
        # Row i sees every slot up to its own (start + i): causal, offset by what the cache holds.
        visible = (torch.arange(start + length, device=x.device)[None, :] <= positions[:, None])[None, None]
        for index, layer in enumerate(self.weights.layers):
            x = self._layer(layer, x, cache, index, positions, start + length, visible, False)
        return self._logits(x)

    @_inference
    def step(self, cache: KVCache, column: torch.Tensor, position: int) -> torch.Tensor:
        """Feed one column `[B, K]` at slot `position`; logits `[N, K, V]` for the next."""
        if self.native is not None or self.arena is not None and self.arena.shares(cache):
            return self.step_streams([cache], [column], [position])[0]
        tokens = self._tokens(cache, column)
        if self._graphs is not None:
            return self._graphs.step(self._masked_step, cache, tokens, position)
        position_t = torch.tensor([position], device=column.device)
        if self.compiled:
            return self._masked_step(tokens, position_t, cache.keys, cache.values, cache.cross_keys,
                                     cache.cross_values, cache.cross_mask)
        x = self._embed(tokens[..., None]) + self.weights.positions[position]
        for index, layer in enumerate(self.weights.layers):
            x = self._layer(layer, x, cache, index, position_t, position + 1, None, False)
        return self._logits(x)[:, 0]

    @_inference
    def step_streams(self, caches: Sequence[KVCache], columns: Sequence[torch.Tensor],
                     positions: Sequence[int], logit_windows: int | None = None) -> list[torch.Tensor]:
        """One step of several windows at once: stream i feeds `columns[i]` `[B_i, K]` at
        `positions[i]` of `caches[i]`; its logits `[N_i, K, V]`, equal to `step` on it alone, for the
        first `logit_windows` streams (default all). The streams after them only fill their caches
        (a next window's context, handoff.py): the native step skips the work that has no other use.

        The eager Python step shares each weight read across streams where the product is
        row-independent (riffd's int8 and int4 kernels); elsewhere each stream's rows are multiplied on
        their own, because a BLAS sgemm's result for a row depends on the rows beside it (MKL:
        F.linear(x[:4], W)[:2] differs from F.linear(x[:2], W) by ~5e-5), which would make a
        seeded job's audio depend on who else is playing. The native step takes every
        stream's rows in one call (row-independent in C); so does the slot arena's (`_arena_streams`),
        its shapes fixed whoever plays; the compiled step runs stream by stream.
        """
        if self.arena is not None and any(BINDING in cache.bindings for cache in caches):
            return self._arena_streams(caches, columns, positions)[:logit_windows]
        if self.native is not None:
            hidden = self._native_inputs(caches, columns, positions)
            vocab = self.weights.vocab
            return [out.view(out.shape[0], -1, vocab)
                    for out in self.native.step_hidden(hidden, caches, positions, logit_windows)]
        if len(caches) == 1 or self.compiled:
            return [self.step(c, col, p) for c, col, p in zip(caches, columns, positions, strict=True)][:logit_windows]
        tokens = [self._tokens(c, col) for c, col in zip(caches, columns, strict=True)]
        splits = [t.shape[0] for t in tokens]
        w = self.weights
        x = torch.cat([self._embed(t[..., None]) + w.positions[p] for t, p in zip(tokens, positions, strict=True)])
        position_ts = [torch.tensor([p], device=x.device) for p in positions]
        for index, layer in enumerate(w.layers):
            x = self._layer_streams(layer, x, splits, caches, index, positions, position_ts)
        logits = _project(w.lm_heads, w.final_norm(x), splits).view(x.shape[0], -1, self.vocab).float()
        return list(logits.split(splits))[:logit_windows]

    def _arena_streams(self, caches: Sequence[KVCache], columns: Sequence[torch.Tensor],
                       positions: Sequence[int]) -> list[torch.Tensor]:
        """`step_streams` where some windows live in the arena: those in one arena step, the others
        (a window that did not fit it, or whose condition does not) on their own path."""
        assert self.arena is not None
        shared = [i for i, cache in enumerate(caches) if self.arena.shares(cache)]
        made: list[torch.Tensor | None] = [None] * len(caches)
        if shared:
            logits = self.arena.step([caches[i] for i in shared], [columns[i] for i in shared],
                                     [positions[i] for i in shared])
            for i, out in zip(shared, logits, strict=True):
                made[i] = out
        rest = [i for i in range(len(caches)) if made[i] is None]
        if rest:
            alone = [caches[i] for i in rest]
            for cache in alone:
                cache.bindings.pop(BINDING, None)  # not back here: `shares` said no for good
            for i, out in zip(rest, self.step_streams(alone, [columns[i] for i in rest], [positions[i] for i in rest]),
                              strict=True):
                made[i] = out
        return [out for out in made if out is not None]

    # The model, one function each.
    def _tokens(self, cache: KVCache, columns: torch.Tensor) -> torch.Tensor:
        """Codes `[B, K, ...]` repeated for the null rows when the cache holds twice as many rows."""
        return columns.repeat(2, *([1] * (columns.dim() - 1))) if cache.keys[0].shape[0] != columns.shape[0] else columns

    def _native_inputs(self, caches: Sequence[KVCache], columns: Sequence[torch.Tensor],
                       positions: Sequence[int]) -> torch.Tensor:
        """The native step's input `[sum N_i, H]` float32: each window's columns embedded at its position,
        as `_embed(_tokens(...)) + positions[p]` makes them (the same gathers, sums and additions, so the
        same bits), with fewer calls a step: a guided window's null rows copy its conditional rows (they
        feed the same codes) instead of gathering them again; one native call a window where riffd's
        library runs (`embed.c`), else the tables read as one `[K * (V + 1), H]` table by `index_select`."""
        w = self.weights
        books, codes, hidden = w.embeddings.shape
        if self._flat_embeddings is None:
            self._flat_embeddings = w.embeddings.reshape(books * codes, hidden)
            self._book_offsets = torch.arange(books, device=w.embeddings.device) * codes
            if InputEmbedder.fits(w.embeddings, w.positions):
                self._embedder = InputEmbedder(w.embeddings, w.positions)
        rows = [int(cache.keys[0].shape[0]) if cache.keys else column.shape[0]
                for cache, column in zip(caches, columns, strict=True)]
        out = torch.empty((sum(rows), hidden), dtype=torch.float32, device=w.embeddings.device)
        start = 0
        for column, position, count in zip(columns, positions, rows, strict=True):
            prompts = column.shape[0]
            if count not in (prompts, 2 * prompts) or column.shape[1] != books:
                raise ValueError(f"columns {tuple(column.shape)} do not match a window of {count} rows")
            if self._embedder is not None:
                # A window alone (the common step) writes the whole buffer: no slice of it (a call, with
                # the caches cold from the native step's weights, of ~10 us).
                self._embedder.into(out if count == out.shape[0] else out[start:start + count], column, position)
                start += count
                continue
            index = (column + self._book_offsets).reshape(-1)
            summed = self._flat_embeddings.index_select(0, index).view(prompts, books, hidden).sum(dim=1)
            if w.embeddings.dtype == torch.float32:
                torch.add(summed, w.positions[position], out=out[start:start + prompts])
            else:
                out[start:start + prompts] = summed + w.positions[position]
            if count != prompts:
                out[start + prompts:start + count] = out[start:start + prompts]
            start += count
        return out

    def _embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """Sum of the codebooks' embeddings: `[N, K, T]` codes to `[N, T, H]`."""
        books = torch.arange(tokens.shape[1], device=tokens.device)[:, None]
        return self.weights.embeddings[books, tokens].sum(dim=1)

    def _layer(self, layer: LayerWeights, x: torch.Tensor, cache: KVCache, index: int, positions: torch.Tensor,
               visible_len: int, visible: torch.Tensor | None, causal: bool) -> torch.Tensor:
        """One pre-norm decoder layer on `x` `[N, T, H]` whose rows sit at `positions` `[T]`."""
        w = self.weights
        n, t, hidden = x.shape
        q, k, v = layer.qkv(layer.self_norm(x)).view(n, t, 3, w.heads, w.head_dim).permute(2, 0, 3, 1, 4)
        cache.write(index, positions, k, v)
        keys, values = cache.read(index, visible_len, q.dtype)
        if causal and self.native is not None and prefill_attention.fits(q, keys, values):
            # A window's prefill on an approximate engine: riffd's causal attention (float32 sums in
            # another order than PyTorch's, within its rounding; bench.window_prefill).
            x = x + layer.self_out(prefill_attention.causal_attention(q, keys, values))
        else:
            attn = F.scaled_dot_product_attention(q, keys, values, attn_mask=visible, is_causal=causal)
            x = x + layer.self_out(attn.transpose(1, 2).reshape(n, t, hidden))
        if layer.cross_q is not None and layer.cross_out is not None and layer.cross_norm is not None:
            q = layer.cross_q(layer.cross_norm(x)).view(n, t, w.heads, w.head_dim).transpose(1, 2)
            cross_keys, cross_values, mask = cache.cross_keys[index], cache.cross_values[index], cache.cross_mask
            if causal and self.native is not None and prefill_attention.fits(q, cross_keys, cross_values, causal=False,
                                                                             mask=mask):
                # the prefill's cross-attention likewise (PyTorch's took ~6 ms a layer for a few text tokens)
                x = x + layer.cross_out(prefill_attention.masked_attention(q, cross_keys, cross_values, mask))
            else:
                attn = F.scaled_dot_product_attention(q, cross_keys, cross_values, attn_mask=mask)
                x = x + layer.cross_out(attn.transpose(1, 2).reshape(n, t, hidden))
        inner = layer.fc1(layer.ffn_norm(x))
        if causal and self.native is not None and w.activation is F.gelu and gelu.fits(inner):
            # the prefill's GELU as the native step computes its own (erf within 1.5e-7)
            return x + layer.fc2(gelu.gelu_(inner))
        return x + layer.fc2(w.activation(inner))

    def _layer_streams(self, layer: LayerWeights, x: torch.Tensor, splits: list[int], caches: Sequence[KVCache],
                       index: int, positions: Sequence[int], position_ts: list[torch.Tensor]) -> torch.Tensor:
        """`_layer` for one step of several streams: `x` `[sum N_i, 1, H]`, stream i's rows in `splits[i]`."""
        w = self.weights
        hidden = x.shape[-1]
        qkv = _project(layer.qkv, layer.self_norm(x), splits)
        attn = []
        for rows, cache, position, position_t in zip(qkv.split(splits), caches, positions, position_ts, strict=True):
            q, k, v = rows.view(rows.shape[0], 1, 3, w.heads, w.head_dim).permute(2, 0, 3, 1, 4)
            cache.write(index, position_t, k, v)
            keys, values = cache.read(index, position + 1, q.dtype)
            attn.append(F.scaled_dot_product_attention(q, keys, values).transpose(1, 2).reshape(-1, 1, hidden))
        x = x + _project(layer.self_out, torch.cat(attn), splits)
        if layer.cross_q is not None and layer.cross_out is not None and layer.cross_norm is not None:
            q_all = _project(layer.cross_q, layer.cross_norm(x), splits)
            attn = []
            for q, cache in zip(q_all.split(splits), caches, strict=True):
                q = q.view(q.shape[0], 1, w.heads, w.head_dim).transpose(1, 2)
                out = F.scaled_dot_product_attention(q, cache.cross_keys[index], cache.cross_values[index],
                                                     attn_mask=cache.cross_mask)
                attn.append(out.transpose(1, 2).reshape(-1, 1, hidden))
            x = x + _project(layer.cross_out, torch.cat(attn), splits)
        inner = w.activation(_project(layer.fc1, layer.ffn_norm(x), splits))
        return x + _project(layer.fc2, inner, splits)

    def _step_masked(self, tokens: torch.Tensor, position_t: torch.Tensor, keys: list[torch.Tensor],
                     values: list[torch.Tensor], cross_keys: list[torch.Tensor], cross_values: list[torch.Tensor],
                     cross_mask: torch.Tensor | None) -> torch.Tensor:
        """Fixed-shape step for torch.compile: the whole cache, slots past `position` masked out."""
        cache = KVCache(keys, values, cross_keys, cross_values, cross_mask, keys[0].shape[2])
        x = self._embed(tokens[..., None]) + self.weights.positions.index_select(0, position_t)
        visible = (torch.arange(cache.max_positions, device=tokens.device) <= position_t)[None, None, None]
        for index, layer in enumerate(self.weights.layers):
            x = self._layer(layer, x, cache, index, position_t, cache.max_positions, visible, False)
        return self._logits(x)[:, 0]

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        """Scores `[N, T, K, V]` (float32) of every row of `x` `[N, T, H]`."""
        w = self.weights
        return w.lm_heads(w.final_norm(x)).view(x.shape[0], x.shape[1], -1, self.vocab).float()


def _project(linear: Linear, x: torch.Tensor, splits: list[int]) -> torch.Tensor:
    """`linear(x)` for the rows of several streams, each row's result as if its stream ran alone.

    riffd's int8 and int4 kernels compute every row on its own (each activation row quantised alone,
    integer sums, the same float steps whatever the other rows), and so does its dense kernel for
    bfloat16 (each row's float32 sums in one order), so all streams go through them together and the
    weights are read once. Other
    formats multiply each stream's rows separately: the same call, and so the same result, as
    the stream alone.
    """
    if isinstance(linear, Int8Linear) and linear.packed is not None:
        return linear.independent_rows(x)
    # int4: a window of more rows than its kernel takes goes through dequantised weights alone; so too here.
    if isinstance(linear, Int4Linear) and linear.packed is not None and max(splits) <= linear.KERNEL_ROWS:
        return linear.independent_rows(x)
    # bfloat16 on riffd's dense kernel: each row summed on its own too.
    if isinstance(linear, DenseLinear) and linear.rows_independent and max(splits) in linear.native_rows:
        return linear.independent_rows(x)
    return torch.cat([linear(part) for part in x.split(splits)])
