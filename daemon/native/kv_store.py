"""Python side of attention.c's `riffd_store_vectors`: a prefill's keys or values into an int8 or
+kv4 cache in one native call a layer (the bits of kv_cache.py's quantising, without its torch ops)."""

from __future__ import annotations

import ctypes
import functools

import torch

from daemon.native import NativeUnavailable, kernels


@functools.cache  # a failure raises, so it is not cached
def _library() -> ctypes.CDLL:
    loaded = kernels()
    i64, ptr = ctypes.c_int64, ctypes.c_void_p
    loaded.riffd_store_vectors.argtypes = [ptr, ptr, ptr, ptr, i64, i64, i64, i64, i64, i64, i64]
    loaded.riffd_store_vectors.restype = ctypes.c_int
    return loaded


def store(slots: torch.Tensor, scales: torch.Tensor, x: torch.Tensor, positions: torch.Tensor, *, bits: int,
          int8_positions: int = 0) -> bool:
    """Quantise `x` `[N, heads, T, head_dim]` into `slots` (int8 `[N, heads, P, head_dim]`, or the
    4-bit layout's uint8 `[N, heads, P + int8_positions, head_dim / 2]`) and `scales` (float32
    `[N, heads, P]`, or the 4-bit layout's float16 `[N, heads, P + int8_positions]`: kv_cache.py) at
    `positions` `[T]`. False, with nothing written, where the kernel cannot take
    them (another device or dtype, a head size it does not take, no kernels here)."""
    if x.device.type != "cpu" or slots.device.type != "cpu" or not slots.is_contiguous() \
            or not scales.is_contiguous() or scales.dtype != (torch.float32 if bits == 8 else torch.float16) or x.dim() != 4 \
            or x.shape[:2] != scales.shape[:2] or x.shape[2] != positions.numel():
        return False
    max_positions = scales.shape[2] - (int8_positions if bits == 4 else 0)
    dtype, rows, width = (torch.int8, max_positions, x.shape[3]) if bits == 8 \
        else (torch.uint8, max_positions + int8_positions, x.shape[3] // 2)
    if slots.dtype != dtype or slots.shape != (*x.shape[:2], rows, width) or not 0 <= int8_positions <= max_positions:
        return False
    if positions.numel() == 0 or int(positions.min()) < 0 or int(positions.max()) >= max_positions:
        return False
    try:
        library = _library()
    except NativeUnavailable:
        return False
    vectors = x.to(torch.float32).contiguous()
    where = positions.to(torch.int64).contiguous()
    groups = x.shape[0] * x.shape[1]
    return bool(library.riffd_store_vectors(slots.data_ptr(), scales.data_ptr(), vectors.data_ptr(), where.data_ptr(),
                                            groups, x.shape[2], x.shape[3], slots.shape[2], max_positions, bits,
                                            int8_positions))
