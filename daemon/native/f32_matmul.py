"""Python side of `f32_matmul.c`: float32 or bfloat16 weights times a handful of rows, weights read once."""

from __future__ import annotations

import ctypes
import functools

import torch

from daemon.native import NativeUnavailable, kernels

_i64, _ptr = ctypes.c_int64, ctypes.c_void_p

#: The weight dtypes the kernel reads (bfloat16 widened to float on load).
WEIGHT_DTYPES = (torch.float32, torch.bfloat16)


@functools.cache  # a failure raises, so it is not cached
def _library() -> ctypes.CDLL:
    loaded = kernels()
    for name in ("riffd_f32_matmul", "riffd_bf16_matmul"):
        getattr(loaded, name).argtypes = [_ptr, _i64, _i64, _ptr, _ptr, _i64, ctypes.c_int]
        getattr(loaded, name).restype = None
    return loaded


def max_rows() -> int:
    """Rows one pass serves (more take more passes over the weights); 0 where the kernel cannot run."""
    try:
        return int(_library().riffd_f32_max_rows())
    except NativeUnavailable:
        return 0


def fits(weight: torch.Tensor) -> bool:
    """Whether `weight` `[n, k]` is one the kernel takes: float32 or bfloat16, contiguous, on the CPU, n even,
    k % 16 == 0."""
    return (weight.dtype in WEIGHT_DTYPES and weight.device.type == "cpu" and weight.is_contiguous()
            and weight.dim() == 2 and weight.shape[0] % 2 == 0 and weight.shape[1] % 16 == 0)


def matmul(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """`x` `[m, k]` times `weight` `[n, k]` transposed: `[m, n]` float32 (F.linear's result, summed in another
    order). Activations of another float dtype are taken as float32; bfloat16 weights' products are exact."""
    if not fits(weight) or not x.is_floating_point() or x.dim() != 2 or x.shape[1] != weight.shape[1]:
        raise ValueError(f"f32 matmul takes float [m, {weight.shape[1]}] by a fitting weight, got {tuple(x.shape)} "
                         f"{x.dtype} by {tuple(weight.shape)} {weight.dtype}")
    x = x.float().contiguous()
    out = torch.empty((x.shape[0], weight.shape[0]), dtype=torch.float32)
    function = _library().riffd_bf16_matmul if weight.dtype == torch.bfloat16 else _library().riffd_f32_matmul
    # ctypes releases the GIL for the call.
    function(x.data_ptr(), x.shape[0], x.shape[1], weight.data_ptr(), out.data_ptr(), weight.shape[0],
             torch.get_num_threads())
    return out
