"""Key/value caches for sampling one window of a prior, owned by the sampling call.

Each attention kind keeps only the keys it will read again, in a buffer allocated once
and written in place, so a step costs the same at position 10 as at position 6000:
  block:          the current block             (ring of `block_ctx` slots)
  prev_block:     previous and current block    (ring of `2 * block_ctx` slots)
  transpose/dense: every position so far        (n_ctx slots)
  prime:          the lyric prefix              (`lyric_prefix_len` slots)
  cross:          the lyric encoder's keys      (computed once per window)
Nothing here is stored on the modules, so two jobs sampling with the same model at the same
time cannot disturb each other.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .config import BLOCK, CROSS, DENSE, PREV_BLOCK, PRIME, TRANSPOSE_BLOCK


@dataclass
class LayerCache:
    """Keys and values of one attention layer: `keys`/`values` are [B, capacity, D]."""

    kind: str
    block_ctx: int
    keys: torch.Tensor | None
    values: torch.Tensor | None

    @classmethod
    def allocate(
        cls,
        kind: str,
        *,
        batch: int,
        width: int,
        n_ctx: int,
        block_ctx: int,
        prefix_len: int,
        device: torch.device,
        dtype: torch.dtype,
    ) -> LayerCache:
        capacity = {
            BLOCK: block_ctx,
            PREV_BLOCK: 2 * block_ctx,
            TRANSPOSE_BLOCK: n_ctx,
            DENSE: n_ctx,
            PRIME: min(prefix_len, n_ctx),
            CROSS: 0,
        }[kind]
        if kind == CROSS:
            return cls(kind, block_ctx, None, None)
        buffer = torch.zeros(batch, capacity, width, device=device, dtype=dtype)
        return cls(kind, block_ctx, buffer, buffer.clone())

    @property
    def capacity(self) -> int:
        return 0 if self.keys is None else self.keys.shape[1]

    def write(self, start: int, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Store the keys/values [B, T, D] of positions start..start+T-1 that will be read again."""
        if self.kind == CROSS:
            self.keys, self.values = keys, values
            return
        positions = torch.arange(start, start + keys.shape[1], device=keys.device)
        if self.kind == PRIME:
            keep = positions < self.capacity
            slots = positions[keep]
        elif self.kind in (BLOCK, PREV_BLOCK):
            # ring buffer: only the last `capacity` positions can still be read
            keep = positions >= start + keys.shape[1] - self.capacity
            slots = positions[keep] % self.capacity
        else:
            keep = torch.ones_like(positions, dtype=torch.bool)
            slots = positions
        if bool(keep.all()):
            self.keys[:, slots] = keys
            self.values[:, slots] = values
        else:
            self.keys[:, slots] = keys[:, keep]
            self.values[:, slots] = values[:, keep]

    def write_one(self, position: int, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Store the keys/values [B, 1, D] of one position (the per-step fast path)."""
        if self.kind == PRIME:
            if position >= self.capacity:
                return
            slot = position
        elif self.kind in (BLOCK, PREV_BLOCK):
            slot = position % self.capacity
        else:
            slot = position
        self.keys[:, slot : slot + 1] = keys
        self.values[:, slot : slot + 1] = values

    def read(self, position: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Keys/values [B, K, D] the query at `position` attends to; None means attend to nothing.

        Must be called after the keys of `position` itself were written.
        """
        bc = self.block_ctx
        if self.kind == BLOCK:
            end = position % bc + 1
            return self.keys[:, :end], self.values[:, :end]
        if self.kind == TRANSPOSE_BLOCK:
            return self.keys[:, position % bc : position + 1 : bc], self.values[:, position % bc : position + 1 : bc]
        if self.kind == PREV_BLOCK:
            block = position // bc
            if block == 0:
                return None
            start = ((block - 1) % 2) * bc
            return self.keys[:, start : start + bc], self.values[:, start : start + bc]
        if self.kind == DENSE:
            return self.keys[:, : position + 1], self.values[:, : position + 1]
        if self.kind == PRIME:
            end = min(position + 1, self.capacity)
            return self.keys[:, :end], self.values[:, :end]
        return self.keys, self.values


@dataclass
class WindowCache:
    """The caches of every layer of one prior's transformer for one sampling window."""

    layers: list[LayerCache]
    batch: int
    position: int = 0  # next position to be fed
    position_tensor: torch.Tensor | None = None  # the same on the device, for the fixed-shape step

    def memory_bytes(self) -> int:
        total = 0
        for layer in self.layers:
            if layer.keys is not None:
                total += 2 * layer.keys.numel() * layer.keys.element_size()
        return total
