"""Python side of `prefill_attention.c`: a window prefill's causal self-attention for the native engines."""

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
    loaded.riffd_prefill_attention.argtypes = [ptr, i64, i64, i64, ptr, ptr, ptr, i64, i64, i64, i64, i64, i64,
                                               ctypes.c_float, ctypes.c_int]
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


def fits(q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> bool:
    """Whether the kernel takes these: float32 on the CPU, q `[N, heads, T, D]` with unit stride in D,
    keys and values contiguous `[N, heads, L, D]` with L >= T, and D a head size the kernel takes."""
    return (q.dtype == keys.dtype == values.dtype == torch.float32 and q.device.type == "cpu"
            and q.dim() == 4 and q.stride(-1) == 1 and keys.is_contiguous() and values.is_contiguous()
            and keys.shape == values.shape and keys.shape[:2] == q.shape[:2] and keys.shape[3] == q.shape[3]
            and keys.shape[2] >= q.shape[2] and takes_head_dim(int(q.shape[3])))


def causal_attention(q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """`F.scaled_dot_product_attention(q, keys, values, is_causal=True)`'s result for query rows that
    sit at the last T of the L key slots (query i sees keys 0 .. L - T + i), as `[N, T, heads * D]`
    (the heads side by side, as the output projection reads them), within float32 rounding of it in
    another order. `fits(q, keys, values)` must hold."""
    if not fits(q, keys, values):
        raise ValueError(f"native prefill attention cannot take q {tuple(q.shape)} {q.dtype}, "
                         f"keys {tuple(keys.shape)} {keys.dtype}")
    n, heads, t, dim = q.shape
    length = keys.shape[2]
    out = torch.empty((n, t, heads * dim), dtype=torch.float32)
    _library().riffd_prefill_attention(q.data_ptr(), q.stride(0), q.stride(1), q.stride(2), keys.data_ptr(),
                                       values.data_ptr(), out.data_ptr(), n, heads, t, length, length - t, dim,
                                       1.0 / math.sqrt(dim), torch.get_num_threads())
    return out
