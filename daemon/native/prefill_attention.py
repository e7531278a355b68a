"""Python side of `prefill_attention.c`: a window prefill's self-attention (causal) and cross-attention
(an additive mask) for the native engines."""

from __future__ import annotations

import ctypes
import functools
import math

import torch

from daemon.native import NativeUnavailable, kernels


@functools.cache  # a failure raises, so it is not cached
def _library() -> ctypes.CDLL:
    loaded = kernels()
    i64, ptr = ctypes.c_int64, ctypes.c_void_p
    loaded.riffd_prefill_attention.argtypes = [ptr, i64, i64, i64, ptr, ptr, ptr, i64, i64, i64, i64, i64,
                                               ctypes.c_float, ptr, ctypes.c_int, ctypes.c_int]
    loaded.riffd_prefill_attention.restype = None
    loaded.riffd_prefill_attention_fits.argtypes = [i64]
    loaded.riffd_prefill_attention_fits.restype = ctypes.c_int
    return loaded


@functools.cache
def takes_head_dim(dim: int) -> bool:
    """Whether the kernel runs here for heads of `dim` values (16, 32, 64 or 128)."""
    try:
        return bool(_library().riffd_prefill_attention_fits(dim))
    except NativeUnavailable:
        return False


def fits(q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, *, causal: bool = True,
         mask: torch.Tensor | None = None) -> bool:
    """Whether the kernel takes these: float32 on the CPU, q `[N, heads, T, D]` with unit stride in D,
    keys and values contiguous `[N, heads, L, D]` (L >= T when `causal`), D a head size the kernel takes,
    and `mask` None or float32 `[N, 1, 1, L]` (not with `causal`)."""
    if mask is not None and (causal or mask.dtype != torch.float32 or mask.shape != (keys.shape[0], 1, 1, keys.shape[2])):
        return False
    return (q.dtype == keys.dtype == values.dtype == torch.float32 and q.device.type == "cpu"
            and q.dim() == 4 and q.stride(-1) == 1 and keys.is_contiguous() and values.is_contiguous()
            and keys.shape == values.shape and keys.shape[:2] == q.shape[:2] and keys.shape[3] == q.shape[3]
            and (keys.shape[2] >= q.shape[2] or not causal) and keys.shape[2] > 0
            and takes_head_dim(int(q.shape[3])))


def causal_attention(q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """`F.scaled_dot_product_attention(q, keys, values, is_causal=True)`'s result for query rows that
    sit at the last T of the L key slots (query i sees keys 0 .. L - T + i), as `[N, T, heads * D]`
    (the heads side by side, as the output projection reads them), within float32 rounding of it in
    another order. `fits(q, keys, values)` must hold."""
    return _attention(q, keys, values, None, causal=True)


def masked_attention(q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                     mask: torch.Tensor | None) -> torch.Tensor:
    """`F.scaled_dot_product_attention(q, keys, values, attn_mask=mask)` (every query sees every key;
    `mask` None or float32 `[N, 1, 1, L]`, added to the scores: the cross-attention's) as `[N, T, heads * D]`,
    within float32 rounding of it in another order. `fits(q, keys, values, causal=False)` must hold."""
    return _attention(q, keys, values, mask, causal=False)


def _attention(q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor | None, *,
               causal: bool) -> torch.Tensor:
    """`mask`: None or float32 `[N, 1, 1, L]` (not with `causal`)."""
    if not fits(q, keys, values, causal=causal, mask=mask):
        raise ValueError(f"native prefill attention cannot take q {tuple(q.shape)} {q.dtype}, keys {tuple(keys.shape)} "
                         f"{keys.dtype}, mask {None if mask is None else (tuple(mask.shape), mask.dtype)}")
    if mask is not None:
        mask = mask.reshape(keys.shape[0], keys.shape[2]).contiguous()
    n, heads, t, dim = q.shape
    out = torch.empty((n, t, heads * dim), dtype=torch.float32)
    _library().riffd_prefill_attention(q.data_ptr(), q.stride(0), q.stride(1), q.stride(2), keys.data_ptr(),
                                       values.data_ptr(), out.data_ptr(), n, heads, t, keys.shape[2], dim,
                                       1.0 / math.sqrt(dim), None if mask is None else mask.data_ptr(),
                                       int(causal), torch.get_num_threads())
    return out
