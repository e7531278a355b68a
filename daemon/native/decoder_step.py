"""ctypes mirror of `riffd_native.h`'s decoder structs, and the calls into `decoder_step.c`.

Two entry points: `riffd_step_rows`, a batch of rows each with its own caches and position
(continuous batching), and `riffd_decoder_step`, one window's cache and one position for the
whole batch (today's native_step.py). Every mirrored struct's size and field offsets are checked
against the library's own at load.
"""

from __future__ import annotations

import ctypes
import functools
import threading
from collections.abc import Sequence
from typing import ClassVar
from dataclasses import dataclass

import torch

from daemon.native import NativeUnavailable, kernels
from daemon.native.int4_matvec import PackedInt4
from daemon.native.int8_matvec import PackedInt8

_ptr = ctypes.c_void_p
_i64 = ctypes.c_int64

#: attention.c keeps a query and an output row in registers up to this size (MusicGen's heads: 64).
MAX_HEAD_DIM = 256

#: Bits per cached key/value code by the slot tensors' dtype: int8 codes, or 4-bit codes packed two a
#: byte in uint8 (kv_cache.py); the C step's `riffd_row.kv_bits`.
CACHE_BITS: dict[torch.dtype, int] = {torch.int8: 8, torch.uint8: 4}


class Mirrored(ctypes.Structure):
    """A ctypes mirror of the C struct named `_c_name` (checked by `check_layout`)."""

    _c_name: ClassVar[str] = ""


class Int8Struct(Mirrored):
    """`riffd_int8`: one projection's packed weights, int8 (act8: with 8-bit activations) or
    (int4_group > 0) int4."""

    _c_name = "riffd_int8"
    _fields_ = [("packed", _ptr), ("row_sums", _ptr), ("scales", _ptr), ("rows", _i64), ("cols", _i64),
                ("int4_group", _i64), ("act8", _i64)]

    @classmethod
    def of(cls, weights: PackedInt8 | PackedInt4 | None) -> "Int8Struct":
        if weights is None:
            return cls()  # packed NULL: the layer has no such projection
        if isinstance(weights, PackedInt4):
            return cls(weights.packed.data_ptr(), None, None, weights.rows, weights.cols, weights.group)
        return cls(weights.packed.data_ptr(), weights.row_sums.data_ptr(), weights.scales.data_ptr(), weights.rows,
                   weights.cols, 0, int(weights.activation_bits == 8))


class NormStruct(Mirrored):
    _c_name = "riffd_norm"
    _fields_ = [("weight", _ptr), ("bias", _ptr)]

    @classmethod
    def of(cls, weight: torch.Tensor, bias: torch.Tensor) -> "NormStruct":
        if weight.dtype != torch.float32 or bias.dtype != torch.float32 or not weight.is_contiguous() \
                or not bias.is_contiguous():
            raise ValueError("layer norm weights must be contiguous float32")
        return cls(weight.data_ptr(), bias.data_ptr())


class LayerWeightsStruct(Mirrored):
    """One layer's weights (no caches): the batched step's model."""

    _c_name = "riffd_layer_weights"
    _fields_ = [("self_norm", NormStruct), ("qkv", Int8Struct), ("self_out", Int8Struct),
                ("cross_norm", NormStruct), ("cross_q", Int8Struct), ("cross_out", Int8Struct),
                ("ffn_norm", NormStruct), ("fc1", Int8Struct), ("fc2", Int8Struct)]


class ModelStruct(Mirrored):
    _c_name = "riffd_model"
    _fields_ = [("hidden", _i64), ("heads", _i64), ("head_dim", _i64), ("ffn", _i64), ("layers", _i64),
                ("eps", ctypes.c_float), ("layer", ctypes.POINTER(LayerWeightsStruct)), ("final_norm", NormStruct),
                ("lm_heads", Int8Struct)]


class RowCacheStruct(Mirrored):
    """One activation row's caches in one layer."""

    _c_name = "riffd_row_cache"
    _fields_ = [("keys", _ptr), ("values", _ptr), ("key_scales", _ptr), ("value_scales", _ptr),
                ("cross_keys", _ptr), ("cross_values", _ptr), ("folded_scores", Int8Struct), ("folded_mix", Int8Struct)]


class RowStruct(Mirrored):
    """One activation row of a batched step: its caches (one per layer), cross mask and position."""

    _c_name = "riffd_row"
    _fields_ = [("layer", ctypes.POINTER(RowCacheStruct)), ("cross_mask", _ptr), ("position", _i64),
                ("max_positions", _i64), ("cross_len", _i64), ("kv_bits", _i64), ("kv_int8_positions", _i64)]


class LayerStruct(Mirrored):
    _c_name = "riffd_layer"
    _fields_ = [("self_norm", NormStruct), ("qkv", Int8Struct), ("self_out", Int8Struct),
                ("cross_norm", NormStruct), ("cross_q", Int8Struct), ("cross_out", Int8Struct),
                ("ffn_norm", NormStruct), ("fc1", Int8Struct), ("fc2", Int8Struct),
                ("keys", _ptr), ("values", _ptr), ("key_scales", _ptr), ("value_scales", _ptr),
                ("cross_keys", _ptr), ("cross_values", _ptr)]


class DecoderStruct(Mirrored):
    _c_name = "riffd_decoder"
    _fields_ = [("batch", _i64), ("hidden", _i64), ("heads", _i64),
                ("head_dim", _i64), ("ffn", _i64), ("max_positions", _i64),
                ("cross_len", _i64), ("layers", _i64), ("eps", ctypes.c_float),
                ("cross_mask", _ptr), ("layer", ctypes.POINTER(LayerStruct)), ("final_norm", NormStruct),
                ("lm_heads", Int8Struct), ("scratch", _ptr), ("threads", ctypes.c_int)]


class EmbeddingStruct(Mirrored):
    """`riffd_embedding`: the model's input tables (step_draw.c)."""

    _c_name = "riffd_embedding"
    _fields_ = [("tables", _ptr), ("positions", _ptr), ("books", _i64), ("codes_per_book", _i64),
                ("position_count", _i64)]


class FeedStruct(Mirrored):
    """`riffd_feed`: one window's column fed to a step (step_draw.c)."""

    _c_name = "riffd_feed"
    _fields_ = [("codes", _ptr), ("prompts", _i64), ("rows", _i64), ("position", _i64)]


class DrawStruct(Mirrored):
    """`riffd_draw`: one window's draw after a step (step_draw.c); `undecided` its result."""

    _c_name = "riffd_draw"
    _fields_ = [("logits", _ptr), ("state", _ptr), ("scores", _ptr), ("noise", _ptr), ("bits", _ptr), ("work", _ptr),
                ("codes", _ptr), ("rows", _i64), ("guided", _i64), ("top_k", _i64), ("guidance", ctypes.c_float),
                ("temperature", ctypes.c_float), ("undecided", _i64)]


MIRRORED: tuple[type[Mirrored], ...] = (Int8Struct, NormStruct, LayerWeightsStruct, ModelStruct,
                                                RowCacheStruct, RowStruct, LayerStruct, DecoderStruct)
#: `riffd_step_draw`'s own structs, checked where the library has it.
STEP_DRAW_MIRRORED: tuple[type[Mirrored], ...] = (EmbeddingStruct, FeedStruct, DrawStruct)


def check_layout(loaded: ctypes.CDLL, structs: Sequence[type[Mirrored]] = MIRRORED) -> None:
    """Raise NativeUnavailable naming the first struct whose ctypes mirror differs from the C layout."""
    for struct in structs:
        name = struct._c_name
        size = loaded.riffd_struct_size(name.encode())
        if size != ctypes.sizeof(struct):
            raise NativeUnavailable(f"{name} is {size} bytes in C, {ctypes.sizeof(struct)} in its ctypes mirror "
                                    "(daemon/native/decoder_step.py): keep the two in step")
        for field, *_ in struct._fields_:
            offset, mirrored = loaded.riffd_field_offset(name.encode(), field.encode()), getattr(struct, field).offset
            if offset != mirrored:
                raise NativeUnavailable(f"{name}.{field} is at byte {offset} in C, {mirrored} in its ctypes mirror")


@functools.cache  # a failure raises, so it is not cached
def functions() -> ctypes.CDLL:
    """The library with the decoder steps' signatures set, its struct layout checked; NativeUnavailable
    where it cannot run."""
    return bind(kernels())


def bind(loaded: ctypes.CDLL) -> ctypes.CDLL:
    """`loaded` (this library, or another build of its sources: bench.step_ab) with the decoder steps'
    signatures set, its struct layout checked against the mirrors here."""
    loaded.riffd_struct_size.argtypes = [ctypes.c_char_p]
    loaded.riffd_struct_size.restype = _i64
    loaded.riffd_field_offset.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    loaded.riffd_field_offset.restype = _i64
    check_layout(loaded)
    loaded.riffd_decoder_scratch_floats.argtypes = [ctypes.POINTER(DecoderStruct)]
    loaded.riffd_decoder_scratch_floats.restype = _i64
    loaded.riffd_decoder_step.argtypes = [ctypes.POINTER(DecoderStruct), _ptr, _i64, _ptr]
    loaded.riffd_decoder_step.restype = None
    loaded.riffd_step_scratch_floats.argtypes = [ctypes.POINTER(ModelStruct), ctypes.POINTER(RowStruct), _i64]
    loaded.riffd_step_scratch_floats.restype = _i64
    loaded.riffd_step_rows.argtypes = [ctypes.POINTER(ModelStruct), ctypes.POINTER(RowStruct), _i64, _ptr, _ptr, _ptr,
                                       ctypes.c_int]
    loaded.riffd_step_rows.restype = None
    if hasattr(loaded, "riffd_step_rows_out"):  # not in a build of an older revision (bench.step_ab's base)
        loaded.riffd_step_rows_out.argtypes = [ctypes.POINTER(ModelStruct), ctypes.POINTER(RowStruct), _i64, _i64,
                                               _ptr, _ptr, _ptr, ctypes.c_int]
        loaded.riffd_step_rows_out.restype = None
    if hasattr(loaded, "riffd_step_draw"):  # not in a build of an older revision (bench.step_ab's base)
        check_layout(loaded, STEP_DRAW_MIRRORED)
        loaded.riffd_step_draw.argtypes = [ctypes.POINTER(ModelStruct), ctypes.POINTER(EmbeddingStruct),
                                           ctypes.POINTER(RowStruct), _i64, ctypes.POINTER(FeedStruct), _i64, _i64,
                                           ctypes.POINTER(DrawStruct), _i64, _ptr, _ptr, _ptr, ctypes.c_int,
                                           ctypes.c_double]
        loaded.riffd_step_draw.restype = _i64
    loaded.riffd_gelu.argtypes = [_ptr, ctypes.c_int64]
    loaded.riffd_gelu.restype = None
    if hasattr(loaded, "riffd_fuse_self_cost"):  # not in a build of an older revision (bench.step_ab's base)
        loaded.riffd_fuse_self_cost.argtypes = [_i64]
        loaded.riffd_fuse_self_cost.restype = _i64
    return loaded


def _address(tensor: torch.Tensor | None, offset_elements: int = 0) -> int | None:
    if tensor is None:
        return None
    return tensor.data_ptr() + offset_elements * tensor.element_size()


def row_caches(keys: Sequence[torch.Tensor], values: Sequence[torch.Tensor], key_scales: Sequence[torch.Tensor],
               value_scales: Sequence[torch.Tensor], cross_keys: Sequence[torch.Tensor],
               cross_values: Sequence[torch.Tensor], row: int, *, int8_positions: int = 0,
               skip_zero_cross: bool = True) -> ctypes.Array[RowCacheStruct]:
    """Row `row`'s caches in every layer, as the array a `RowStruct.layer` points at.

    Per layer: `keys`/`values` int8 `[N, heads, P, head_dim]` (or uint8 `[N, heads, P + H, head_dim / 2]`:
    an int8 head of H = `int8_positions` positions, then 4-bit codes two a byte, kv_cache.py's packed
    layout), `key_scales`/`value_scales` float32 `[N, heads, P]` (with 4-bit slots float16
    `[N, heads, P + H]`, the head's float32 scales two entries each), `cross_keys`/`cross_values` float32 `[N, heads, S, head_dim]` (empty lists:
    no cross-attention), all contiguous. The array points into the tensors: keep them alive while it
    is used. A row whose cross values are all zero (guidance's null condition) is bound without
    them (`skip_zero_cross`): its cross-attention output is +0 exactly whatever the query, so the C
    step writes that instead of reading them (half a guided step's cross-attention, same bits).
    """
    layers = len(keys)
    if not (len(values) == len(key_scales) == len(value_scales) == layers
            and len(cross_keys) == len(cross_values) and len(cross_keys) in (0, layers)):
        raise ValueError("one key, value and scale tensor per layer (and cross keys/values for all or none)")
    out = (RowCacheStruct * layers)()
    for index in range(layers):
        k, v, ks, vs = keys[index], values[index], key_scales[index], value_scales[index]
        scale_dtype = torch.float16 if CACHE_BITS.get(k.dtype) == 4 else torch.float32
        if k.dtype not in CACHE_BITS or v.dtype != k.dtype or ks.dtype != scale_dtype or vs.dtype != scale_dtype:
            raise ValueError("the native step needs int8 self-attention slots with float32 scales (or packed 4-bit "
                             "uint8 ones with float16 scales)")
        if not all(t.is_contiguous() and t.device.type == "cpu" for t in (k, v, ks, vs)):
            raise ValueError("cache tensors must be contiguous and on the CPU")
        head = int8_positions if scale_dtype == torch.float16 else 0
        if not 0 <= row < k.shape[0] or v.shape != k.shape or ks.shape[:2] != k.shape[:2] or vs.shape != ks.shape \
                or ks.shape[2] != k.shape[2] or not 0 <= 2 * head <= k.shape[2] \
                or k.dtype != keys[0].dtype or k.shape[1:3] != keys[0].shape[1:3] \
                or (cross_keys and cross_keys[index].shape[3] != k.shape[3] * 8 // CACHE_BITS[k.dtype]):
            raise ValueError(f"row {row} of caches shaped {tuple(k.shape)} / {tuple(ks.shape)}")
        slots = k.shape[1] * k.shape[2]
        cross_k = cross_keys[index] if cross_keys else None
        cross_v = cross_values[index] if cross_values else None
        cross_slots = 0
        if cross_k is not None and cross_v is not None:
            if cross_k.dtype != torch.float32 or cross_v.shape != cross_k.shape or not cross_k.is_contiguous() \
                    or not cross_v.is_contiguous() or cross_k.shape[0] != k.shape[0]:
                raise ValueError("cross keys and values must be contiguous float32 [N, heads, S, head_dim]")
            cross_slots = cross_k.shape[1] * cross_k.shape[2] * cross_k.shape[3]
            # numpy's scan runs on this thread: torch's `any` wakes the intra-op pool once a layer,
            # ~1.3 ms for musicgen-small's 48 (more on a busy machine) against ~0.4, on the first step.
            if skip_zero_cross and not bool(cross_v[row].numpy().any()):
                cross_k = cross_v = None
        scale_slots = ks.shape[1] * ks.shape[2]
        out[index] = RowCacheStruct(_address(k, row * slots * k.shape[3]), _address(v, row * slots * k.shape[3]),
                                    _address(ks, row * scale_slots), _address(vs, row * scale_slots),
                                    _address(cross_k, row * cross_slots), _address(cross_v, row * cross_slots))
    return out


@dataclass
class BoundRow:
    """One activation row's caches, bound once a window: `RowStruct`s are made from it each step."""

    caches: ctypes.Array[RowCacheStruct]
    max_positions: int
    cross_len: int
    kv_bits: int  # 8: int8 slots; 4: packed 4-bit codes
    kv_int8_positions: int  # kv_bits 4: the window's first positions, kept in int8
    cross_mask: int | None  # address of its [cross_len] additive mask, or None
    keep: tuple[object, ...]  # what the addresses point into (tensors, and folded conditions holding theirs)


def bind_row(keys: Sequence[torch.Tensor], values: Sequence[torch.Tensor], key_scales: Sequence[torch.Tensor],
             value_scales: Sequence[torch.Tensor], cross_keys: Sequence[torch.Tensor],
             cross_values: Sequence[torch.Tensor], cross_mask: torch.Tensor | None, row: int, *,
             int8_positions: int = 0, skip_zero_cross: bool = True) -> BoundRow:
    """Row `row` of a window's caches (tensors as `row_caches` takes them, `int8_positions` the 4-bit
    layout's int8 head: KVCache.int8_positions; `cross_mask` float32, any shape `[N, ..., S]`
    contiguous, or None) for `NativeModel.step`."""
    cross_len = cross_keys[0].shape[2] if cross_keys else 0
    mask_address = None
    if cross_mask is not None:
        if cross_mask.dtype != torch.float32 or not cross_mask.is_contiguous() or cross_mask.shape[-1] != cross_len \
                or cross_mask.numel() != cross_mask.shape[0] * cross_len:
            raise ValueError(f"the cross mask must be contiguous float32 [N, ..., {cross_len}]")
        mask_address = _address(cross_mask, row * cross_len)
    keep = tuple(keys) + tuple(values) + tuple(key_scales) + tuple(value_scales) + tuple(cross_keys) \
        + tuple(cross_values) + ((cross_mask,) if cross_mask is not None else ())
    bits = CACHE_BITS.get(keys[0].dtype, 0)  # another dtype: row_caches refuses it
    head = int8_positions if bits == 4 else 0
    return BoundRow(row_caches(keys, values, key_scales, value_scales, cross_keys, cross_values, row,
                               int8_positions=head, skip_zero_cross=skip_zero_cross),
                    max_positions=key_scales[0].shape[2] - head, cross_len=cross_len, kv_bits=bits,
                    kv_int8_positions=head,
                    cross_mask=mask_address, keep=keep)


class RowBatch:
    """The rows of a batched step, bound once per batch composition; `set_positions` each step. A row
    may come several times (the same `BoundRow`), each at a position of its own: one window's
    consecutive columns in one step.

    Holds the `RowStruct` array the C side reads (positions patched in place) and the rows it
    points into, so nothing is rebuilt between steps.
    """

    def __init__(self, rows: Sequence[BoundRow]) -> None:
        if not rows:
            raise ValueError("a batch needs at least one row")
        self.rows = tuple(rows)
        # Rows bound to the same caches (a next window's context columns riding a step together,
        # decoder_step.c's row groups): each must write its own slot.
        owners: dict[int, list[int]] = {}
        for index, row in enumerate(rows):
            owners.setdefault(id(row), []).append(index)
        self._shared = [indices for indices in owners.values() if len(indices) > 1]
        self.structs = (RowStruct * len(rows))(*(RowStruct(row.caches, row.cross_mask, 0, row.max_positions,
                                                           row.cross_len, row.kv_bits, row.kv_int8_positions)
                                                 for row in rows))
        # The model that asked and the floats of scratch its step needs for these rows: their windows
        # fix it, not their positions (riffd_step_scratch_floats), so it is asked once a batch.
        self.scratch_need: tuple[NativeModel, int] | None = None
        # What callers keep for a step of these rows (step_draw.py's buffers), by their own keys.
        self.kept: dict[object, object] = {}

    def __len__(self) -> int:
        return len(self.rows)

    def set_positions(self, positions: Sequence[int]) -> None:
        """The slot each row writes this step (attending to slots 0..position), checked against its window."""
        if len(positions) != len(self.rows):
            raise ValueError(f"{len(self.rows)} rows need {len(self.rows)} positions, got {len(positions)}")
        for index, (row, position) in enumerate(zip(self.rows, positions)):
            # The C side trusts these: check them here, where a mistake is an exception, not a stray write.
            if not 0 <= position < row.max_positions:
                raise ValueError(f"position {position} outside row {index}'s cache of {row.max_positions}")
        for indices in self._shared:
            if len({positions[index] for index in indices}) != len(indices):
                raise ValueError(f"rows {indices} of one cache need positions of their own, got "
                                 f"{[positions[index] for index in indices]}")
        for struct, position in zip(self.structs, positions):
            struct.position = position


class NativeModel:
    """The batched native step over one model's int8 weights: `step(x, batch)`.

    `layers`: each layer's `LayerWeightsStruct` (`Int8Struct.of(packed)`, `NormStruct.of(...)`;
    cross_q empty where the model has no cross-attention). The tensors they point into must
    outlive this object. One step at a time (the scratch is this object's). `library`: another build
    of the kernels, `bind()`'s (bench.step_ab times two builds in one process); default functions().
    """

    def __init__(self, layers: Sequence[LayerWeightsStruct], *, heads: int, head_dim: int, eps: float,
                 final_norm: NormStruct, lm_heads: Int8Struct, library: ctypes.CDLL | None = None) -> None:
        self._functions = library if library is not None else functions()
        if head_dim % 16 or not 16 <= head_dim <= MAX_HEAD_DIM or not layers:
            raise NativeUnavailable(f"the native step needs layers and head_dim % 16 == 0, at most {MAX_HEAD_DIM} "
                                    f"(head_dim {head_dim})")
        self._layers = (LayerWeightsStruct * len(layers))(*layers)
        self.hidden, self.vocab = heads * head_dim, lm_heads.rows
        self.cross_attention = bool(layers[0].cross_q.packed)
        self._model = ModelStruct(self.hidden, heads, head_dim, layers[0].fc1.rows, len(layers), eps,
                                  ctypes.cast(self._layers, ctypes.POINTER(LayerWeightsStruct)), final_norm, lm_heads)
        self._scratch = torch.empty(0)
        self._lock = threading.Lock()

    def batch(self, rows: Sequence[BoundRow]) -> RowBatch:
        """A `RowBatch` of these rows, checked against this model's layers."""
        for index, row in enumerate(rows):
            if len(row.caches) != self._model.layers or (row.cross_len > 0) != self.cross_attention:
                raise ValueError(f"row {index}'s caches do not match the model's layers")
        return RowBatch(rows)

    def step(self, x: torch.Tensor, batch: RowBatch, threads: int | None = None, *,
             logit_rows: int | None = None) -> torch.Tensor:
        """`x` `[n, hidden]` float32 (embedded inputs, positions added; overwritten), each row's caches
        written at its position (`batch.set_positions`): logits `[logit_rows, vocab]` float32 of the
        first `logit_rows` rows (default all). The rows after them are keys-only (a next window's
        context riding the step, handoff.py): their caches are written, the same bits, and their last
        layer stops there (riffd_step_rows_out). A row's logits do not depend on the other rows of the batch."""
        n = len(batch)
        if x.shape != (n, self.hidden) or x.dtype != torch.float32 or not x.is_contiguous():
            raise ValueError(f"{n} rows need x contiguous float32 [{n}, {self.hidden}], got {x.dtype} {tuple(x.shape)}")
        out = n if logit_rows is None else logit_rows
        if not 0 < out <= n:
            raise ValueError(f"logits for {out} of {n} rows")
        logits = torch.empty((out, self.vocab), dtype=torch.float32)
        with self._lock:
            scratch = self._scratch_address(batch)
            # ctypes releases the GIL for the call: the daemon's other threads run meanwhile.
            if out == n:
                self._functions.riffd_step_rows(ctypes.byref(self._model), batch.structs, n, x.data_ptr(),
                                                logits.data_ptr(), scratch, threads or torch.get_num_threads())
            else:
                self._functions.riffd_step_rows_out(ctypes.byref(self._model), batch.structs, n, out, x.data_ptr(),
                                                    logits.data_ptr(), scratch, threads or torch.get_num_threads())
        return logits

    def step_draw(self, batch: RowBatch, embedding: EmbeddingStruct, feeds: ctypes.Array[FeedStruct], logit_rows: int,
                  draws: ctypes.Array[DrawStruct], x: int, logits: int, slack: float, threads: int | None = None) -> int:
        """`riffd_step_draw`: each feed's column embedded into `x` (the address of `[len(batch), hidden]` float32),
        the step of `batch`'s rows at their feeds' positions (checked there against their caches, and patched
        into `batch`) with logits for the first `logit_rows` into `logits` (the address of `[logit_rows, vocab]`
        float32), then each draw in order (its `undecided` set). The caller checked the feeds' codes and the
        draws' buffers (the C side trusts them); returns its result (0: every draw decided, 1: not; < 0:
        refused, nothing stepped)."""
        with self._lock:
            scratch = self._scratch_address(batch)
            return int(self._functions.riffd_step_draw(ctypes.byref(self._model), ctypes.byref(embedding), batch.structs,
                                                       len(batch), feeds, len(feeds), logit_rows, draws, len(draws), x,
                                                       logits, scratch, threads or torch.get_num_threads(), slack))

    def _scratch_address(self, batch: RowBatch) -> int:
        """The address of scratch enough for a step of `batch` (called under the lock)."""
        # Asked once a batch: a ctypes call each step cost ~13 us with the caches cold.
        kept = batch.scratch_need
        if kept is None or kept[0] is not self:
            kept = batch.scratch_need = (self, int(self._functions.riffd_step_scratch_floats(
                ctypes.byref(self._model), batch.structs, len(batch))))
        if self._scratch.numel() < kept[1]:
            self._scratch = torch.empty(kept[1], dtype=torch.float32)
        return int(self._scratch.data_ptr())
