"""The decoder's key/value cache for one window: fixed shape, written in place.

Self-attention keys and values get one slot per position, allocated once for the whole
window, so a step never reallocates or concatenates. Cross-attention keys and values depend
only on the conditioning and are computed once, at prefill.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class KVCache:
    """Per-layer tensors of one window.

    `keys[l]` / `values[l]` are `[N, heads, max_positions, head_dim]` (N = batch, doubled under
    guidance); `cross_keys[l]` / `cross_values[l]` are `[N, heads, S, head_dim]`, and
    `cross_mask` `[N, 1, 1, S]` is additive (0 or a large negative), or None when nothing is masked.
    """

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    cross_keys: list[torch.Tensor]
    cross_values: list[torch.Tensor]
    cross_mask: torch.Tensor | None
    max_positions: int

    @classmethod
    def allocate(cls, *, layers: int, batch: int, heads: int, head_dim: int, max_positions: int,
                 dtype: torch.dtype, device: torch.device) -> "KVCache":
        shape = (batch, heads, max_positions, head_dim)
        # Zeros, not empty: the compiled step reads the whole buffer (masked), and garbage could be NaN.
        keys = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(layers)]
        values = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(layers)]
        return cls(keys, values, [], [], None, max_positions)

    def write(self, layer: int, positions: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Store `keys`/`values` `[N, heads, T, head_dim]` at `positions` `[T]` of `layer`, in place
        (converted to the cache's dtype)."""
        self.keys[layer].index_copy_(2, positions, keys.to(self.keys[layer].dtype))
        self.values[layer].index_copy_(2, positions, values.to(self.values[layer].dtype))

    @property
    def nbytes(self) -> int:
        tensors = self.keys + self.values + self.cross_keys + self.cross_values
        return sum(t.numel() * t.element_size() for t in tensors)

    def free(self) -> None:
        """Drop every buffer now, so a stopped job gives its memory back at once."""
        self.keys.clear()
        self.values.clear()
        self.cross_keys.clear()
        self.cross_values.clear()
        self.cross_mask = None
