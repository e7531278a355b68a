"""The int8 (and int4) decode step as one native call (`daemon/native/decoder_step.c`, `riffd_step_rows`), over
`DecoderWeights`.

Same weights, same cache, same math as `MusicgenDecoder.step`'s Python path with int8 or int4 projections;
only the glue between the weight products moves out of Python. Every row of a call has its own
caches and position, so one call steps several windows (continuous batching), and a row's logits
are bit-identical whatever else is in the call: alone and batched decode alike. Built at load
when every projection went to riffd's int8 or int4 kernel; otherwise the decoder keeps its Python step.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch

from daemon.models.musicgen import folded_condition
from daemon.models.musicgen.folded_condition import ConditionFolder, FoldedRow
from daemon.models.musicgen.kv_cache import KVCache
from daemon.models.musicgen.speed import Int4Linear, Int8Linear, Linear
from daemon.models.musicgen.weights import DecoderWeights, NormWeights
from daemon.native import NativeUnavailable
from daemon.native.decoder_step import (CACHE_BITS, BoundRow, Int8Struct, LayerWeightsStruct, NativeModel, NormStruct, RowBatch,
                                         bind_row)


def _norm(norm: NormWeights | None) -> NormStruct:
    return NormStruct() if norm is None else NormStruct.of(norm.weight, norm.bias)


def _packed(linear: Linear | None) -> Int8Struct:
    if linear is None:
        return Int8Struct.of(None)
    assert isinstance(linear, (Int8Linear, Int4Linear))
    return Int8Struct.of(linear.packed)


#: Folded conditions a NativeStep keeps for windows to come (a job's next window; streams that share a prompt).
FOLDS_KEPT = 4


class NativeStep:
    """`step_streams(xs, caches, positions)`: one native call for the rows of several windows."""

    #: The self-attention cache's dtype the native step reads and writes (int8 with a scale per vector;
    #: +kv4 engines: kv_cache.PACKED4, 4-bit codes two a byte).
    CACHE_DTYPE = torch.int8

    def __init__(self, weights: DecoderWeights) -> None:
        self.weights = weights
        layers = [LayerWeightsStruct(_norm(lw.self_norm), _packed(lw.qkv), _packed(lw.self_out), _norm(lw.cross_norm),
                                     _packed(lw.cross_q), _packed(lw.cross_out), _norm(lw.ffn_norm), _packed(lw.fc1),
                                     _packed(lw.fc2)) for lw in weights.layers]
        self.model = NativeModel(layers, heads=weights.heads, head_dim=weights.head_dim, eps=weights.final_norm.eps,
                                 final_norm=_norm(weights.final_norm), lm_heads=_packed(weights.lm_heads))
        # Conditions fold into int8 cross projections (folded_condition.py); int4 ones keep them.
        cross = [(lw.cross_q, lw.cross_out) for lw in weights.layers]
        self.folder = ConditionFolder([q.packed for q, _ in cross], [o.packed for _, o in cross], weights.heads) \
            if all(isinstance(q, Int8Linear) and isinstance(o, Int8Linear) and q.packed and o.packed for q, o in cross) \
            else None
        self._folds: list[FoldedRow] = []  # the last conditions folded, newest first

    @classmethod
    def build(cls, weights: DecoderWeights, device: torch.device) -> NativeStep | None:
        """A native step over `weights`, or None where they are not all in riffd's int8 or int4 kernels' layouts."""
        linears = [weights.lm_heads] + [p for layer in weights.layers for p in layer.projections]
        if not all(isinstance(p, (Int8Linear, Int4Linear)) and p.packed is not None for p in linears):
            return None
        if len({n.eps for n in weights.norms}) != 1 or device.type != "cpu" or weights.head_dim % 16:
            return None
        try:
            return cls(weights)
        except NativeUnavailable:
            return None

    def __call__(self, x: torch.Tensor, cache: KVCache, position: int) -> torch.Tensor:
        """One window: embedded input `[N, 1, H]` at `position`; logits `[N, K * V]`."""
        return self.step_streams([x], [cache], [position])[0]

    def step_streams(self, xs: Sequence[torch.Tensor], caches: Sequence[KVCache],
                     positions: Sequence[int]) -> list[torch.Tensor]:
        """Window i's embedded input `xs[i]` `[N_i, 1, H]` at `positions[i]` of `caches[i]`; its logits `[N_i, K * V]`."""
        for x, cache in zip(xs, caches, strict=True):
            self._check(cache, x.shape[0], x.shape[-1])
        hidden = torch.cat([x.reshape(x.shape[0], -1) for x in xs]).to(torch.float32).contiguous()
        return self.step_hidden(hidden, caches, positions)

    def step_hidden(self, hidden: torch.Tensor, caches: Sequence[KVCache], positions: Sequence[int],
                    logit_windows: int | None = None) -> list[torch.Tensor]:
        """`step_streams` on the windows' inputs already side by side: `hidden` `[sum N_i, H]` float32,
        contiguous, overwritten (the decoder's own buffer: no copy). Logits `[N_i, K * V]` per window
        of the first `logit_windows` (default all); the windows after them only fill their caches
        (a next window's context riding the step: `NativeModel.step`'s keys-only rows)."""
        sizes = [self._check(cache, None, hidden.shape[-1]) for cache in caches]
        if hidden.shape[0] != sum(sizes):
            raise ValueError(f"{hidden.shape[0]} input rows for windows of {sum(sizes)}")
        wanted = len(sizes) if logit_windows is None else logit_windows
        if not 0 < wanted <= len(sizes):
            raise ValueError(f"logits of {wanted} of {len(sizes)} windows")
        batch = self._batch(caches)
        batch.set_positions([position for position, size in zip(positions, sizes, strict=True) for _ in range(size)])
        logits = self.model.step(hidden, batch, logit_rows=sum(sizes[:wanted]))  # hidden is overwritten in place
        if wanted == 1:
            return [logits]
        sizes = sizes[:wanted]
        # Slices, not Tensor.split (its Python wrapper cost ~20 us a step, a riding step's 2 windows).
        starts = list(itertools.accumulate(sizes, initial=0))
        return [logits[start:end] for start, end in zip(starts, starts[1:])]

    def _check(self, cache: KVCache, rows: int | None, hidden: int) -> int:
        """The window's rows, after checking `rows` inputs of width `hidden` fit its cache (the C side
        trusts them: a mistake here is an exception, not a stray write)."""
        if not cache.keys or (rows is not None and cache.keys[0].shape[0] != rows) or hidden != self.weights.hidden:
            raise ValueError(f"input of {rows} rows of {hidden} does not match the window's cache")
        return int(cache.keys[0].shape[0])

    def _batch(self, caches: Sequence[KVCache]) -> RowBatch:
        """The `RowBatch` of these windows' rows, kept between steps until the windows stepping together
        or a condition change: building it costs more than the positions' patch (~0.1 ms a step for
        a window and the next one riding it, handoff.py). A window alone keeps its own; windows
        together are kept by the first one's cache (freed with it), and dropped there once it steps
        alone, so that the others' caches are not held past their windows."""
        first = caches[0]
        if len(caches) == 1:
            first.bindings.pop("native_together", None)
            kept = first.bindings.get("native_batch")
            if kept is not None and kept[0] == first.condition_version:
                return kept[1]
            batch = self.model.batch(self.rows(first))
            first.bindings["native_batch"] = (first.condition_version, batch)
            return batch
        versions = [cache.condition_version for cache in caches]
        together = first.bindings.get("native_together")
        if (together is not None and len(together[0]) == len(caches)
                and all(a is b for a, b in zip(together[0], caches)) and together[1] == versions):
            return together[2]
        batch = self.model.batch([row for cache in caches for row in self.rows(cache)])
        first.bindings["native_together"] = (tuple(caches), versions, batch)
        return batch

    def rows(self, cache: KVCache) -> list[BoundRow]:
        """The window's rows bound for the native step: once a window, again after a condition swap."""
        bound = cache.bindings.get("native")
        if bound is not None and bound[0] == cache.condition_version:
            return bound[1]
        bits = CACHE_BITS.get(cache.keys[0].dtype)
        if bits is None or (cache.cross_keys and cache.cross_keys[0].dtype != torch.float32):
            raise ValueError("the native step needs an int8 (or packed 4-bit) self-attention cache and float32 "
                             "cross-attention")
        if cache.keys[0].shape[1] != self.weights.heads or cache.keys[0].shape[3] * 8 // bits != self.weights.head_dim:
            raise ValueError(f"a cache of {tuple(cache.keys[0].shape)} slots does not match the model's heads")
        mask = cache.cross_mask
        rows = [bind_row(cache.keys, cache.values, cache.key_scales, cache.value_scales, cache.cross_keys,
                         cache.cross_values, mask, row, int8_positions=cache.int8_positions)
                for row in range(cache.keys[0].shape[0])]
        for index, row in enumerate(rows):
            self._fold(cache, index, row)
        cache.bindings["native"] = (cache.condition_version, rows)
        return rows

    def _fold(self, cache: KVCache, index: int, row: BoundRow) -> None:
        """Row `index`'s condition folded into its bound caches, where it has one that folds."""
        if self.folder is None or not folded_condition.FOLD_CONDITION or not cache.cross_keys \
                or not row.caches[0].cross_keys:  # no condition, or guidance's null row (bound without it)
            return
        slots = self.folder.slots(row.cross_len)
        if slots is None:
            return
        keys, values = [k[index] for k in cache.cross_keys], [v[index] for v in cache.cross_values]
        # A long-form job's next window projects the same condition again: fold it once.
        folded = next((f for f in self._folds if f.folds(keys, values)), None)
        if folded is None:
            folded = self.folder.fold(keys, values, slots)
            self._folds = [folded, *self._folds[:FOLDS_KEPT - 1]]
        for layer, (scores, mix) in enumerate(zip(folded.scores, folded.mix, strict=True)):
            row.caches[layer].folded_scores, row.caches[layer].folded_mix = Int8Struct.of(scores), Int8Struct.of(mix)
        row.keep += (folded,)
