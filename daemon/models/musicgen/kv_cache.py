"""The decoder's key/value cache for one window: fixed shape, written in place.

Self-attention keys and values get one slot per position, allocated once for the whole
window, so a step never reallocates or concatenates. Cross-attention keys and values depend
only on the conditioning and are computed once, at prefill.

Slots are stored in the engine's dtype, or as int8 with a scale per (row, head, position)
vector: a step reads every slot written so far, so late in a long window the cache, not the
weights, is most of what a step reads, and int8 halves float16's share again. The `+kv4` engines
halve it once more: 4-bit codes (-7..7) packed two a byte (dtype uint8), with a float16 scale per
vector (`half_scales`: 4 bytes of the 68 a late position reads at head_dim 64, against 8 of 72 for
float32 scales), after a head of the window's first `INT8_HEAD_POSITIONS` positions kept in int8
(bench/kv4_agreement.py measured the greedy agreement this keeps, by position: 4-bit slots from
position 0 cost 10 points over a window's first 24 frames, where few slots average nothing out).

The 4-bit layout, per (row, head): the head's P int8 vectors (P * head_dim bytes), then 4-bit
vectors of head_dim / 2 bytes for positions P.. . That is `(max_positions + P) * head_dim / 2`
bytes, so the tensor is `[N, heads, max_positions + P, head_dim / 2]` uint8: position p < P fills
rows 2p and 2p + 1, position p >= P row p + P (`slot_rows`). The scales, one per position, are laid
out alike, `[N, heads, max_positions + P]` float16: the head's float32 scales in entries 2p and
2p + 1 (their bytes, little-endian: the int8 head keeps riffd_attend_int8's very bits, and the
calibration's +kv4 agreement over its first frames is the int8 cache's), then float16 ones at
p + P (`scale_values` reads both).
"""

from __future__ import annotations

import ctypes
import math
from dataclasses import dataclass, field
from typing import Any

import torch

from daemon.native import huge_pages, kv_store

#: int8 slots hold round(x * 127 / max|x|) of each head_dim vector, and max|x| / 127 beside it.
INT8_LEVELS = 127.0
#: 4-bit slots hold round(x * 7 / max|x|), and max|x| / 7: byte i of a vector's head_dim / 2 holds
#: value i in its low nibble and value i + head_dim / 2 in its high one (two's complement), so a
#: vector read of the bytes feeds two vectors of values (attention.c).
INT4_LEVELS = 7.0
#: The dtype of the 4-bit layout's slots (int8 is the 8-bit one's).
PACKED4 = torch.uint8
#: The dtype of the 4-bit layout's scales (the int8 layout's are float32).
SCALES4 = torch.float16
#: float16's largest finite value: a 4-bit layout scale saturates there (`half_scales`).
FLOAT16_LARGEST = 65504.0
#: Positions at the start of a window the 4-bit layout keeps in int8 (bench/kv4_agreement.py, random
#: musicgen-small, int8a8, greedy agreement with float32 by frames; docs/realtime-log.md, "4-bit keys and values").
INT8_HEAD_POSITIONS = 64


def int8_head(max_positions: int) -> int:
    """Positions of a `max_positions` window the 4-bit layout keeps in int8."""
    return min(INT8_HEAD_POSITIONS, max_positions)


@dataclass
class KVCache:
    """Per-layer tensors of one window.

    `keys[l]` / `values[l]` are `[N, heads, max_positions, head_dim]` (N = batch, doubled under
    guidance), or `[N, heads, max_positions + P, head_dim / 2]` uint8 in the 4-bit layout (an int8
    head of P positions, then 4-bit: the module's doc); with int8 or 4-bit slots, `key_scales[l]` / `value_scales[l]`
    scale them: `[N, heads, max_positions]` float32, or in the 4-bit layout `[N, heads, max_positions + P]`
    float16 laid out as its slots (the module's doc). `cross_keys[l]` / `cross_values[l]` are `[N, heads, S, head_dim]`, and
    `cross_mask` `[N, 1, 1, S]` is additive (0 or a large negative), or None when nothing is masked.
    """

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    cross_keys: list[torch.Tensor]
    cross_values: list[torch.Tensor]
    cross_mask: torch.Tensor | None
    max_positions: int
    key_scales: list[torch.Tensor] = field(default_factory=list)
    value_scales: list[torch.Tensor] = field(default_factory=list)
    # Bumped whenever the cross-attention tensors are replaced (a new condition), so a step that
    # keeps pointers into them (the native one) knows to take them again.
    condition_version: int = 0
    # What a step keeps about this window between calls (the native step's bound rows), by step kind.
    bindings: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @staticmethod
    def buffer_specs(*, layers: int, batch: int, heads: int, head_dim: int, max_positions: int,
                     dtype: torch.dtype) -> list[tuple[tuple[int, ...], torch.dtype]]:
        """(shape, dtype) of each buffer `allocate` makes: keys, values, then the scales where quantised."""
        if dtype == PACKED4 and head_dim % 2:
            raise ValueError(f"the 4-bit cache packs pairs of values: head_dim {head_dim} is odd")
        shape = (batch, heads, max_positions, head_dim)
        if dtype == PACKED4:
            shape = (batch, heads, max_positions + int8_head(max_positions), head_dim // 2)
        specs: list[tuple[tuple[int, ...], torch.dtype]] = [(shape, dtype)] * (2 * layers)
        if dtype in (torch.int8, PACKED4):
            scales = ((shape[:3], SCALES4) if dtype == PACKED4  # as the slots' rows: the module's doc
                      else ((batch, heads, max_positions), torch.float32))
            specs += [scales] * (2 * layers)
        return specs

    @classmethod
    def allocate(cls, *, layers: int, batch: int, heads: int, head_dim: int, max_positions: int,
                 dtype: torch.dtype, device: torch.device, zeroed: bool = True) -> "KVCache":
        """Buffers for `max_positions` slots (`dtype` uint8: the packed 4-bit layout). `zeroed` False leaves them unwritten: for steps that
        read only the slots written so far (the eager and native ones). Zeroing a window's cache
        touches every page of it at once (150 MB for musicgen-small's int8 window, ~40 ms on a
        2-core Zen 4) before the first column can be made; unzeroed, the pages come as slots fill."""
        specs = cls.buffer_specs(layers=layers, batch=batch, heads=heads, head_dim=head_dim,
                                 max_positions=max_positions, dtype=dtype)
        if torch.device(device).type == "cpu":
            # A late step reads every slot so far, a few KB a (row, head) run, 77 MB a step for one
            # guided musicgen-small stream at position 1400 (+kv4): from 4 KiB pages each run's
            # pages cost TLB misses walked under the hypervisor (huge_pages.py). One mapping for the
            # window, a spare one where a window before left it (faulted in: huge_pages.reserve).
            made = huge_pages.huge_empties(specs, zeroed)
        else:
            # The compiled step reads the whole buffer (masked), and garbage could be NaN: zeros there.
            make = torch.zeros if zeroed else torch.empty
            made = [make(shape, dtype=kind, device=device) for shape, kind in specs]
        cache = cls(made[:layers], made[layers:2 * layers], [], [], None, max_positions)
        if len(made) > 2 * layers:
            cache.key_scales, cache.value_scales = made[2 * layers:3 * layers], made[3 * layers:]
        return cache

    @property
    def quantized(self) -> bool:
        return len(self.key_scales) > 0  # len, not bool(list): torch.compile (2.11) cannot trace bool of a list

    @property
    def packed4(self) -> bool:
        """Slots in the 4-bit layout (two codes a byte)."""
        return len(self.keys) > 0 and self.keys[0].dtype == PACKED4

    @property
    def int8_positions(self) -> int:
        """Positions the 4-bit layout keeps in int8 (0 for the other layouts)."""
        return self.keys[0].shape[2] - self.max_positions if self.packed4 else 0

    def slot_rows(self, positions: int) -> int:
        """Rows of `keys[l]` / `values[l]` and entries of `key_scales[l]` / `value_scales[l]` (dim 2) that
        hold the window's first `positions` positions."""
        return positions + min(positions, self.int8_positions)

    def narrowed(self, max_positions: int) -> "KVCache":
        """This cache's buffers seen as a cache of `max_positions` (at most its own) slots: each buffer's
        first bytes, a (row, head)'s slots `max_positions` + the int8 head apart instead of this cache's
        (the same int8 head, so a position's slot rows are `slot_rows`'s in both). For rows filled only
        up to a few hundred positions (a long job's next window while its context rides: handoff.py),
        whose heads' slots then lie nearly back to back: `move_slots` carries them to the wide layout.
        Nothing is copied; the cross-attention tensors are this cache's."""
        if not self.int8_positions <= max_positions <= self.max_positions or max_positions <= 0:
            # (the int8 head's rows must fit: riffd's step checks it, its layout has them first)
            raise ValueError(f"a cache of {self.max_positions} positions (an int8 head of {self.int8_positions}) has "
                             f"no view of {max_positions}")
        rows = max_positions + self.int8_positions

        def prefix(buffer: torch.Tensor) -> torch.Tensor:
            if not buffer.is_contiguous():
                raise ValueError("a cache's prefix view needs contiguous buffers")
            shape = (*buffer.shape[:2], rows, *buffer.shape[3:])
            return buffer.view(-1)[:math.prod(shape)].view(shape)

        view = KVCache([prefix(t) for t in self.keys], [prefix(t) for t in self.values], list(self.cross_keys),
                       list(self.cross_values), self.cross_mask, max_positions,
                       [prefix(t) for t in self.key_scales], [prefix(t) for t in self.value_scales])
        view.condition_version = self.condition_version
        return view

    def _head_codes(self, slots: torch.Tensor) -> torch.Tensor:
        """The int8 head of 4-bit layout slots `[N, heads, max_positions + P, head_dim / 2]`, as a view
        `[N, heads, P, head_dim]` int8."""
        n, heads, _, half = slots.shape
        return slots[:, :, :2 * self.int8_positions].view(torch.int8).view(n, heads, self.int8_positions, 2 * half)

    def write(self, layer: int, positions: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Store `keys`/`values` `[N, heads, T, head_dim]` at `positions` `[T]` of `layer`, in place
        (converted to the cache's dtype)."""
        if self.quantized and len(positions) > 1:
            # A prefill: one native call each for keys and values where riffd's kernels run (the same
            # bits as quantising here; 180-210 ms of torch ops for a 601-frame window's 24 layers).
            bits, head = (4 if self.packed4 else 8), self.int8_positions
            if kv_store.store(self.keys[layer], self.key_scales[layer], keys, positions, bits=bits,
                              int8_positions=head) \
                    and kv_store.store(self.values[layer], self.value_scales[layer], values, positions, bits=bits,
                                       int8_positions=head):
                return
        self.write_with_torch(layer, positions, keys, values)

    def write_with_torch(self, layer: int, positions: torch.Tensor, keys: torch.Tensor,
                             values: torch.Tensor) -> None:
        """`write` in torch ops (the native store's reference, and where it cannot run)."""
        if self.packed4:
            head = self.int8_positions
            early = positions < head
            for slots, scales, new in ((self.keys, self.key_scales, keys), (self.values, self.value_scales, values)):
                if bool(early.any()):
                    codes, scale = quantize_vectors(new[:, :, early])
                    self._head_codes(slots[layer]).index_copy_(2, positions[early], codes)
                    # each float32 scale's two halves into entries 2p and 2p + 1
                    halves = torch.stack((2 * positions[early], 2 * positions[early] + 1), dim=-1).flatten()
                    scales[layer].view(torch.int16).index_copy_(2, halves, scale.contiguous().view(torch.int16))
                if not bool(early.all()):
                    late = ~early
                    codes, scale = quantize_vectors4(new[:, :, late])
                    slots[layer].index_copy_(2, positions[late] + head, codes)
                    scales[layer].index_copy_(2, positions[late] + head, scale)
            return
        if self.quantized:
            for slots, scales, new in ((self.keys, self.key_scales, keys), (self.values, self.value_scales, values)):
                codes, scale = quantize_vectors(new)
                slots[layer].index_copy_(2, positions, codes)
                scales[layer].index_copy_(2, positions, scale)
            return
        self.keys[layer].index_copy_(2, positions, keys.to(self.keys[layer].dtype))
        self.values[layer].index_copy_(2, positions, values.to(self.values[layer].dtype))

    def read(self, layer: int, length: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of the first `length` slots of `layer`, `[N, heads, length, head_dim]` in `dtype`."""
        keys, values = self.keys[layer][:, :, :length], self.values[layer][:, :, :length]
        if self.packed4:
            head = self.int8_positions
            keys, values = (torch.cat((self._head_codes(slots[layer])[:, :, :length],
                                       unpack4(slots[layer][:, :, 2 * head:length + head])), dim=2)
                            for slots in (self.keys, self.values))
        if self.quantized:
            head = self.int8_positions
            return (keys.to(dtype) * scale_values(self.key_scales[layer], head)[:, :, :length, None].to(dtype),
                    values.to(dtype) * scale_values(self.value_scales[layer], head)[:, :, :length, None].to(dtype))
        if keys.dtype != dtype:
            return keys.to(dtype), values.to(dtype)
        return keys, values

    @property
    def nbytes(self) -> int:
        tensors = self.keys + self.values + self.cross_keys + self.cross_values + self.key_scales + self.value_scales
        return sum(t.numel() * t.element_size() for t in tensors)

    def free(self) -> None:
        """Drop every buffer now, so a stopped job gives its memory back at once."""
        for buffers in (self.keys, self.values, self.cross_keys, self.cross_values, self.key_scales, self.value_scales):
            buffers.clear()
        self.cross_mask = None
        self.bindings.clear()


def move_slots(source: KVCache, target: KVCache, positions: int) -> None:
    """Copy the slots and scales of the first `positions` positions of every (row, head) of `source` into
    `target`, a cache of the same rows, heads and int8 head in another layout (`KVCache.narrowed`), the
    same bits. The two may share memory (a narrowed view and its cache): each buffer's slots are read
    whole before any is written."""
    rows = source.slot_rows(positions)
    if target.slot_rows(positions) != rows or positions > target.max_positions:
        raise ValueError(f"{positions} positions do not fit a cache of {target.max_positions} laid out alike")
    pairs = zip((*source.keys, *source.values, *source.key_scales, *source.value_scales),
                (*target.keys, *target.values, *target.key_scales, *target.value_scales), strict=True)
    for old, new in pairs:
        if old.device.type == "cpu" and old.is_contiguous() and new.is_contiguous():
            _move_runs(old, new, rows)
        else:
            new[:, :, :rows].copy_(old[:, :, :rows].clone())  # read whole, then written


def _move_runs(old: torch.Tensor, new: torch.Tensor, rows: int) -> None:
    """`new[:, :, :rows] = old[:, :, :rows]` for contiguous CPU buffers that may share memory: a memmove
    per (row, head) run, in the order that reads each run before another's write reaches it (wider
    runs apart: the last first). A torch copy through a temporary cost ~6 ms a move for musicgen-small
    (96 buffers' allocations and first touches, even for 64 positions); the runs cost ~1 us each."""
    runs = old.shape[0] * old.shape[1]
    row_bytes = old[0, 0, 0].numel() * old.element_size()
    source_stride, target_stride = old.shape[2] * row_bytes, new.shape[2] * row_bytes
    source, target, nbytes = old.data_ptr(), new.data_ptr(), rows * row_bytes
    order = range(runs - 1, -1, -1) if target_stride >= source_stride else range(runs)
    for run in order:
        ctypes.memmove(target + run * target_stride, source + run * source_stride, nbytes)


def quantize_vectors(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """int8 codes of `x` `[..., D]` and a float32 scale per vector `[...]`: x ~ codes * scale.

    The same arithmetic as decoder_step.c's store (x * (127 / max|x|), rounded half to even),
    so the Python and the native step fill a cache alike.
    """
    x = x.float()
    largest = x.abs().amax(dim=-1)
    inverse = torch.where(largest > 0, INT8_LEVELS / largest, torch.zeros_like(largest))
    codes = torch.round(x * inverse[..., None]).clamp(-INT8_LEVELS, INT8_LEVELS).to(torch.int8)
    return codes, largest / INT8_LEVELS


def scale_values(scales: torch.Tensor, int8_positions: int) -> torch.Tensor:
    """A layer's scales `[N, heads, P]` float32 by position: the int8 layout's as they are, the 4-bit
    layout's (`[N, heads, P + int8_positions]` float16, the head's float32 two entries each) unpacked."""
    if scales.dtype != SCALES4:
        return scales
    if not int8_positions:
        return scales.float()
    head = scales[:, :, :2 * int8_positions].view(torch.int16).contiguous().view(torch.float32)
    return torch.cat((head, scales[:, :, 2 * int8_positions:].float()), dim=2)


def half_scales(scales: torch.Tensor) -> torch.Tensor:
    """float32 `scales` as the 4-bit layout keeps them: float16, rounded to nearest (ties to even) and
    saturated at its largest finite value (a vector up to 7 * 65504 decodes as it was, a larger one
    smaller, never infinite): attention.c's kv4_scale, the same bits."""
    return scales.float().clamp(max=FLOAT16_LARGEST).to(SCALES4)


def quantize_vectors4(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """4-bit codes of `x` `[..., D]` packed two a byte `[..., D / 2]` uint8, and a float16 scale per
    vector `[...]` (`half_scales`): x ~ unpack4(codes) * scale. The same arithmetic as attention.c's
    riffd_store_int4 (x * (7 / max|x|), rounded half to even; the codes from the float32 scale, the
    float16 one rounded from it), so the Python and the native step fill a cache alike."""
    x = x.float()
    largest = x.abs().amax(dim=-1)
    inverse = torch.where(largest > 0, INT4_LEVELS / largest, torch.zeros_like(largest))
    codes = torch.round(x * inverse[..., None]).clamp(-INT4_LEVELS, INT4_LEVELS).to(torch.int32)
    half = x.shape[-1] // 2
    packed = (codes[..., :half] & 15) | ((codes[..., half:] & 15) << 4)
    return packed.to(PACKED4), half_scales(largest / INT4_LEVELS)


def unpack4(packed: torch.Tensor) -> torch.Tensor:
    """The int8 codes `[..., D]` (-8..7) of packed 4-bit slots `[..., D / 2]` uint8."""
    wide = packed.to(torch.int16)
    low, high = ((wide & 15) ^ 8) - 8, ((wide >> 4) ^ 8) - 8
    return torch.cat((low, high), dim=-1).to(torch.int8)
