"""A window's condition folded into the cross-attention's projections, for the native step.

A condition (the prompt's text states, projected to keys and values at the window's start) is fixed
for a whole window, yet every step reads the cross-attention's query and output projections, 2 MB
of int8 a layer in musicgen-small, 48 MB of a step's 363. Folded, head h's score for condition
slot t is x . (W_q,h^T k_h,t) / sqrt(head_dim), and the output is sum_h,t p_h,t (W_o,h v_h,t): with
a prompt of 12 text tokens, 192 vectors of 1024 each side, 0.4 MB a layer, and no attention pass of
its own (decoder_step.c's `cross_folded`). The folded vectors are made from the engine's own int8
projections' codes by the int8 kernel (fold.c), then rounded to int8 a vector at a time, so a
folded row's scores and output carry about the error its int8 projections did.

Only the conditional rows fold (guidance's null rows attend to nothing), and only short conditions
(`folds`). Whether a row folds depends on its condition alone, never on its batch or the CPU, so a
stream's codes are the same alone and batched.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from daemon.native import kernels
from daemon.native.decoder_step import Int8Struct
from daemon.native.int8_matvec import PackedInt8, kernel_layout, pack

#: Off: every row takes the projections (tests and bench.step_account compare the two).
FOLD_CONDITION = True

#: A condition folds where its vectors (2 x heads x cross_len x hidden int8 a layer) take at most this
#: share of cross_q's and cross_out's bytes (2 x hidden x hidden) ...
MAX_SHARE = 0.75

#: ... and it has at most this many slots (text tokens): a fold is on the path to a job's first sound,
#: and costs about 1 ms a token (musicgen-small, 2-core Intel Xeon with AVX-512 VNNI: 10 ms at 8
#: tokens, 13 at 12, 49 at 41). The real checkpoints' T5 tokenizer gives ~8-12 tokens for a prompt
#: like "80s pop track with bassy drums and synth" (the random presets' byte tokenizer 41).
MAX_TOKENS = 16


def folds(heads: int, hidden: int, cross_len: int) -> bool:
    """Whether a condition of `cross_len` slots folds: by its length alone (not the kernel's padding), so
    the same on every instruction set."""
    return 0 < cross_len <= MAX_TOKENS and 2 * heads * cross_len <= MAX_SHARE * 2 * hidden


def folded_slots(heads: int, cross_len: int, rows_multiple: int, cols_multiple: int) -> int:
    """Slots a head takes in the folded vectors: `cross_len`, padded so that heads x slots is whole
    blocks of the kernel's rows and a whole number of its column groups."""
    slots = max(cross_len, 1)
    while (heads * slots) % rows_multiple or (heads * slots) % cols_multiple:
        slots += 1
    return slots


@dataclass(frozen=True)
class FoldedRow:
    """One row's folded condition, per layer: scores `[heads * slots, hidden]`, mix `[hidden, heads * slots]`."""

    scores: tuple[PackedInt8, ...]
    mix: tuple[PackedInt8, ...]
    source: tuple[torch.Tensor, ...]  # the row's cross keys then values, per layer: what it was folded from

    def folds(self, keys: Sequence[torch.Tensor], values: Sequence[torch.Tensor]) -> bool:
        """Whether this is the fold of these cross keys and values (equal values, not the same tensors: a
        long-form job's next window projects its condition anew)."""
        mine = self.source
        theirs = (*keys, *values)
        return len(mine) == len(theirs) and all(a.shape == b.shape and torch.equal(a, b) for a, b in zip(mine, theirs))


@functools.cache
def _library() -> ctypes.CDLL:
    loaded = kernels()
    _ptr, _i64 = ctypes.c_void_p, ctypes.c_int64
    loaded.riffd_fold_condition.argtypes = [ctypes.POINTER(Int8Struct), ctypes.POINTER(Int8Struct), _ptr, _ptr, _ptr,
                                            _i64, _i64, _i64, _i64, _ptr, _ptr, _ptr, _ptr, _ptr, _ptr, _ptr,
                                            ctypes.c_int]
    loaded.riffd_fold_condition.restype = ctypes.c_int
    loaded.riffd_fold_work_floats.argtypes = [_i64, _i64, _i64, _i64]
    loaded.riffd_fold_work_floats.restype = _i64
    return loaded


def _empty_packed(layers: int, rows: int, cols: int) -> list[PackedInt8]:
    """`layers` uninitialised packed int8 matrices `[rows, cols]` (fold.c fills them), views of one allocation each."""
    block, group, _ = kernel_layout()
    packed = torch.empty((layers, rows // block, cols // group, block, group), dtype=torch.int8)
    sums = torch.empty((layers, rows), dtype=torch.int32)
    scales = torch.empty((layers, rows), dtype=torch.float32)
    return [PackedInt8(packed=packed[layer], row_sums=sums[layer], scales=scales[layer], rows=rows, cols=cols)
            for layer in range(layers)]


class ConditionFolder:
    """Folds conditions for one model's cross-attention projections (`cross_q`, `cross_out`: each
    layer's packed int8 weights `[hidden, hidden]`): keeps their codes head by head (fold.c's
    `queries_t` and `outputs_h`, as many bytes again as the two projections)."""

    def __init__(self, cross_q: Sequence[PackedInt8], cross_out: Sequence[PackedInt8], heads: int) -> None:
        hidden = cross_q[0].cols
        self.heads, self.hidden, self.head_dim, self.layers = heads, hidden, hidden // heads, len(cross_q)
        d = self.head_dim
        self._queries_t: list[PackedInt8] = []
        self._outputs_h: list[PackedInt8] = []
        self._query_scales: list[torch.Tensor] = []
        for q, o in zip(cross_q, cross_out, strict=True):
            # W_q's rows h * d + j, transposed head by head: [heads * hidden (k), d (j)], unit scales
            q_codes = q.codes().view(heads, d, hidden).transpose(1, 2).reshape(heads * hidden, d)
            self._queries_t.append(pack(q_codes, torch.ones(heads * hidden), 16, huge_pages=False))
            # W_o's columns h * d + j, head by head: [heads * hidden (output row), d (j)], W_o's row scales
            o_codes = o.codes().view(hidden, heads, d).transpose(0, 1).reshape(heads * hidden, d)
            self._outputs_h.append(pack(o_codes, o.scales.repeat(heads), 16, huge_pages=False))
            self._query_scales.append(q.scales.contiguous())
        self._structs = [(Int8Struct.of(q), Int8Struct.of(o)) for q, o in zip(self._queries_t, self._outputs_h)]

    def slots(self, cross_len: int) -> int | None:
        """The folded slots a head takes for a condition of `cross_len` (padded to the kernel's layout), or
        None where it does not fold."""
        if not folds(self.heads, self.hidden, cross_len):
            return None
        block, _, columns = kernel_layout()
        return folded_slots(self.heads, cross_len, block, columns)

    def fold(self, keys: Sequence[torch.Tensor], values: Sequence[torch.Tensor], slots: int,
             threads: int | None = None) -> FoldedRow:
        """One row's condition: its cross keys and values per layer, `[heads, cross_len, head_dim]` float32."""
        heads, hidden, d = self.heads, self.hidden, self.head_dim
        cross_len = keys[0].shape[1]
        # copies: what `folds` compares later must be what was folded, whatever happens to the cache's tensors
        source = tuple(t.contiguous().clone() for t in (*keys, *values))
        if any(t.dtype != torch.float32 or t.shape != (heads, cross_len, d) for t in source):
            raise ValueError(f"cross keys and values must be float32 [{heads}, {cross_len}, {d}] per layer")
        scores = _empty_packed(self.layers, heads * slots, hidden)
        mix = _empty_packed(self.layers, hidden, heads * slots)
        loaded = _library()
        work = torch.empty(loaded.riffd_fold_work_floats(heads, d, cross_len, slots), dtype=torch.float32)
        for layer, (queries_t, outputs_h) in enumerate(self._structs):
            s, m = scores[layer], mix[layer]
            k, v = source[layer], source[self.layers + layer]
            if loaded.riffd_fold_condition(ctypes.byref(queries_t), ctypes.byref(outputs_h),
                                           self._query_scales[layer].data_ptr(), k.data_ptr(), v.data_ptr(),
                                           heads, d, cross_len, slots, s.packed.data_ptr(), s.row_sums.data_ptr(),
                                           s.scales.data_ptr(), m.packed.data_ptr(), m.row_sums.data_ptr(),
                                           m.scales.data_ptr(), work.data_ptr(), threads or torch.get_num_threads()):
                raise ValueError(f"a condition of {cross_len} slots does not fold into {slots}")
        return FoldedRow(scores=tuple(scores), mix=tuple(mix), source=source)
