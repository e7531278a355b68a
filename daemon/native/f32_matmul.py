"""Python side of `f32_matmul.c`: float32 weights times a handful of rows, weights read once."""

from __future__ import annotations

import ctypes
import functools

import torch

from daemon.native import NativeUnavailable, kernels

_i64, _ptr = ctypes.c_int64, ctypes.c_void_p


@functools.cache  # a failure raises, so it is not cached
def _library() -> ctypes.CDLL:
    loaded = kernels()
    loaded.riffd_f32_matmul.argtypes = [_ptr, _i64, _i64, _ptr, _ptr, _i64, ctypes.c_int]
    loaded.riffd_f32_matmul.restype = None
    return loaded


def max_rows() -> int:
    """Rows one pass serves (more take more passes over the weights); 0 where the kernel cannot run."""
    try:
        return int(_library().riffd_f32_max_rows())
    except NativeUnavailable:
        return 0


def fits(weight: torch.Tensor) -> bool:
    """Whether `weight` `[n, k]` is one the kernel takes: float32, contiguous, on the CPU, n even, k % 16 == 0."""
    return (weight.dtype == torch.float32 and weight.device.type == "cpu" and weight.is_contiguous()
            and weight.dim() == 2 and weight.shape[0] % 2 == 0 and weight.shape[1] % 16 == 0)


def matmul(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """`x` `[m, k]` times `weight` `[n, k]` transposed: `[m, n]` float32 (F.linear's result, summed in another order)."""
    if not fits(weight) or x.dtype != torch.float32 or x.dim() != 2 or x.shape[1] != weight.shape[1]:
        raise ValueError(f"f32 matmul takes float32 [m, {weight.shape[1]}] by a fitting weight, got {tuple(x.shape)}")
    x = x.contiguous()
    out = torch.empty((x.shape[0], weight.shape[0]), dtype=torch.float32)
    # ctypes releases the GIL for the call.
    _library().riffd_f32_matmul(x.data_ptr(), x.shape[0], x.shape[1], weight.data_ptr(), out.data_ptr(),
                                weight.shape[0], torch.get_num_threads())
    return out
