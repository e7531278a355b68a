"""The cached sampling step with fixed shapes, for `torch.compile` and CUDA graphs.

The default step (`Attention.step`) slices each cache to the keys the position sees, so
shapes change from step to step. Here every layer attends over its whole cache buffer under
a mask, and the position is a 0-d tensor on the device, so one compiled graph serves every
step of every window. Masked keys get zero weight, so the logits equal the default step's up
to float rounding (tests/jukebox/test_static_step.py).
"""

from __future__ import annotations

import torch

from .config import BLOCK, CROSS, DENSE, PREV_BLOCK, PRIME, TRANSPOSE_BLOCK
from .kv_cache import LayerCache, WindowCache
from .transformer import MASKED, Attention, LayerStack


def write_at(cache: LayerCache, position: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> None:
    """Store keys/values [B, 1, D] of `position` (0-d long tensor) in the slot the kind keeps it in."""
    capacity = cache.capacity
    if cache.kind in (BLOCK, PREV_BLOCK):
        slot = position % capacity
    elif cache.kind == PRIME:
        # positions past the lyric prefix are not kept: rewrite the last slot with itself
        slot = position.clamp(max=capacity - 1)
        keep = position < capacity
        keys = torch.where(keep, keys, cache.keys.index_select(1, slot.view(1)))
        values = torch.where(keep, values, cache.values.index_select(1, slot.view(1)))
    else:
        slot = position
    cache.keys.index_copy_(1, slot.view(1), keys)
    cache.values.index_copy_(1, slot.view(1), values)


def read_masked(cache: LayerCache, position: torch.Tensor):
    """Keys, values [B, K, D] of fixed K for this kind, and which of the K the position sees [K]."""
    bc = cache.block_ctx
    keys, values = cache.keys, cache.values
    if cache.kind == BLOCK:
        seen = torch.arange(bc, device=keys.device) <= position % bc
    elif cache.kind == PREV_BLOCK:
        previous = ((position // bc - 1) % 2) * bc + torch.arange(bc, device=keys.device)
        # in block 0 the previous block is all zeros, as in the full forward pass
        gate = (position >= bc).to(keys.dtype)
        keys = keys.index_select(1, previous) * gate
        values = values.index_select(1, previous) * gate
        seen = torch.ones(bc, dtype=torch.bool, device=keys.device)
    elif cache.kind == TRANSPOSE_BLOCK:
        batch, length, width = keys.shape
        column = (position % bc).view(1)
        keys = keys.view(batch, length // bc, bc, width).index_select(2, column).squeeze(2)
        values = values.view(batch, length // bc, bc, width).index_select(2, column).squeeze(2)
        seen = torch.arange(length // bc, device=keys.device) <= position // bc
    elif cache.kind in (DENSE, PRIME):
        seen = torch.arange(keys.shape[1], device=keys.device) <= position
    elif cache.kind == CROSS:
        seen = torch.ones(keys.shape[1], dtype=torch.bool, device=keys.device)
    else:
        raise ValueError(f"unsupported attention kind {cache.kind!r}")
    return keys, values, seen


def attend_masked(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, n_heads: int, seen: torch.Tensor) -> torch.Tensor:
    """q [B, 1, D] over k, v [B, K, D] where `seen` [K] -> [B, 1, D]."""
    batch, _, width = q.shape
    head = width // n_heads
    q = q.view(batch, 1, n_heads, head).transpose(1, 2)
    k = k.view(batch, -1, n_heads, head).permute(0, 2, 3, 1)
    v = v.view(batch, -1, n_heads, head).transpose(1, 2)
    scale = head**-0.25
    weights = torch.matmul(q, k).mul_(scale * scale)
    if weights.dtype in (torch.float16, torch.bfloat16):
        weights = weights.float()
    weights = weights.masked_fill(~seen, MASKED)
    probs = torch.softmax(weights, dim=-1).type_as(v)
    return torch.matmul(probs, v).transpose(1, 2).reshape(batch, 1, width)


def attention_step(attn: Attention, x: torch.Tensor, position: torch.Tensor, cache: LayerCache) -> torch.Tensor:
    if attn.kind == CROSS:
        q = attn.c_attn(x)
    else:
        q, k, v = attn.c_attn(x).chunk(3, dim=2)
        write_at(cache, position, k, v)
    keys, values, seen = read_masked(cache, position)
    return attn.c_proj(attend_masked(q, keys, values, attn.n_heads, seen))


def stack_step(stack: LayerStack, x: torch.Tensor, position: torch.Tensor, cache: WindowCache) -> torch.Tensor:
    """x [B, 1, W] at `position` -> [B, 1, W]. Cross-attention caches must be filled (`fill_cross`)."""
    for layer, layer_cache in zip(stack._attn_mods, cache.layers):
        x = layer._finish(x, attention_step(layer.attn, layer.layer_norm_0(x), position, layer_cache))
    return x


def fill_cross(stack: LayerStack, cache: WindowCache, encoder_states: torch.Tensor | None) -> None:
    """Compute the cross-attention keys of the lyric encoder's states once, before stepping."""
    for layer, layer_cache in zip(stack._attn_mods, cache.layers):
        if layer.attn.kind == CROSS and layer_cache.keys is None:
            if encoder_states is None:
                raise ValueError("a cross-attention layer needs the lyric encoder's states")
            keys, values = layer.attn.c_enc_kv(encoder_states).chunk(2, dim=2)
            layer_cache.write(0, keys, values)
