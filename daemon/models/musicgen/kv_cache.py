"""The decoder's key/value cache for one window: fixed shape, written in place.

Self-attention keys and values get one slot per position, allocated once for the whole
window, so a step never reallocates or concatenates. Cross-attention keys and values depend
only on the conditioning and are computed once, at prefill.

Slots are stored in the engine's dtype, or as int8 with a scale per (row, head, position)
vector: a step reads every slot written so far, so late in a long window the cache, not the
weights, is most of what a step reads, and int8 halves float16's share again. The `+kv4` engines
halve it once more: 4-bit codes (-7..7) packed two a byte (dtype uint8), with the same scale per
vector (bench/kv4_agreement.py measured the greedy agreement this keeps, by position).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

#: int8 slots hold round(x * 127 / max|x|) of each head_dim vector, and max|x| / 127 beside it.
INT8_LEVELS = 127.0
#: 4-bit slots hold round(x * 7 / max|x|), and max|x| / 7: byte i of a vector's head_dim / 2 holds
#: value i in its low nibble and value i + head_dim / 2 in its high one (two's complement), so a
#: vector read of the bytes feeds two vectors of values (attention.c).
INT4_LEVELS = 7.0
#: The dtype of the 4-bit layout's slots (int8 is the 8-bit one's).
PACKED4 = torch.uint8


@dataclass
class KVCache:
    """Per-layer tensors of one window.

    `keys[l]` / `values[l]` are `[N, heads, max_positions, head_dim]` (N = batch, doubled under
    guidance), or `[N, heads, max_positions, head_dim / 2]` uint8 in the 4-bit layout; with int8 or 4-bit slots, `key_scales[l]` / `value_scales[l]` `[N, heads, max_positions]`
    float32 scale them. `cross_keys[l]` / `cross_values[l]` are `[N, heads, S, head_dim]`, and
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

    @classmethod
    def allocate(cls, *, layers: int, batch: int, heads: int, head_dim: int, max_positions: int,
                 dtype: torch.dtype, device: torch.device, zeroed: bool = True) -> "KVCache":
        """Buffers for `max_positions` slots (`dtype` uint8: the packed 4-bit layout). `zeroed` False leaves them unwritten: for steps that
        read only the slots written so far (the eager and native ones). Zeroing a window's cache
        touches every page of it at once (150 MB for musicgen-small's int8 window, ~40 ms on a
        2-core Zen 4) before the first column can be made; unzeroed, the pages come as slots fill."""
        if dtype == PACKED4 and head_dim % 2:
            raise ValueError(f"the 4-bit cache packs pairs of values: head_dim {head_dim} is odd")
        shape = (batch, heads, max_positions, head_dim // 2 if dtype == PACKED4 else head_dim)
        # The compiled step reads the whole buffer (masked), and garbage could be NaN: zeros there.
        make = torch.zeros if zeroed else torch.empty
        keys = [make(shape, dtype=dtype, device=device) for _ in range(layers)]
        values = [make(shape, dtype=dtype, device=device) for _ in range(layers)]
        cache = cls(keys, values, [], [], None, max_positions)
        if dtype in (torch.int8, PACKED4):
            cache.key_scales = [make(shape[:3], device=device) for _ in range(layers)]
            cache.value_scales = [make(shape[:3], device=device) for _ in range(layers)]
        return cache

    @property
    def quantized(self) -> bool:
        return bool(self.key_scales)

    @property
    def packed4(self) -> bool:
        """Slots in the 4-bit layout (two codes a byte)."""
        return bool(self.keys) and self.keys[0].dtype == PACKED4

    def write(self, layer: int, positions: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Store `keys`/`values` `[N, heads, T, head_dim]` at `positions` `[T]` of `layer`, in place
        (converted to the cache's dtype)."""
        if self.quantized:
            quantize = quantize_vectors4 if self.packed4 else quantize_vectors
            for slots, scales, new in ((self.keys, self.key_scales, keys), (self.values, self.value_scales, values)):
                codes, scale = quantize(new)
                slots[layer].index_copy_(2, positions, codes)
                scales[layer].index_copy_(2, positions, scale)
            return
        self.keys[layer].index_copy_(2, positions, keys.to(self.keys[layer].dtype))
        self.values[layer].index_copy_(2, positions, values.to(self.values[layer].dtype))

    def read(self, layer: int, length: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of the first `length` slots of `layer`, `[N, heads, length, head_dim]` in `dtype`."""
        keys, values = self.keys[layer][:, :, :length], self.values[layer][:, :, :length]
        if self.packed4:
            keys, values = unpack4(keys), unpack4(values)
        if self.quantized:
            return (keys.to(dtype) * self.key_scales[layer][:, :, :length, None].to(dtype),
                    values.to(dtype) * self.value_scales[layer][:, :, :length, None].to(dtype))
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


def quantize_vectors4(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """4-bit codes of `x` `[..., D]` packed two a byte `[..., D / 2]` uint8, and a float32 scale per
    vector `[...]`: x ~ unpack4(codes) * scale. The same arithmetic as attention.c's riffd_store_int4
    (x * (7 / max|x|), rounded half to even), so the Python and the native step fill a cache alike."""
    x = x.float()
    largest = x.abs().amax(dim=-1)
    inverse = torch.where(largest > 0, INT4_LEVELS / largest, torch.zeros_like(largest))
    codes = torch.round(x * inverse[..., None]).clamp(-INT4_LEVELS, INT4_LEVELS).to(torch.int32)
    half = x.shape[-1] // 2
    packed = (codes[..., :half] & 15) | ((codes[..., half:] & 15) << 4)
    return packed.to(PACKED4), largest / INT4_LEVELS


def unpack4(packed: torch.Tensor) -> torch.Tensor:
    """The int8 codes `[..., D]` (-8..7) of packed 4-bit slots `[..., D / 2]` uint8."""
    wide = packed.to(torch.int16)
    low, high = ((wide & 15) ^ 8) - 8, ((wide >> 4) ^ 8) - 8
    return torch.cat((low, high), dim=-1).to(torch.int8)
