"""Python side of `elu.c`: ELU a vector at a time on riffd's threads (PyTorch's is scalar, one thread)."""

from __future__ import annotations

import ctypes
import functools

import torch

from daemon.native import NativeUnavailable, kernels


@functools.cache  # a failure raises, so it is not cached
def _library() -> ctypes.CDLL:
    loaded = kernels()
    loaded.riffd_elu.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_float, ctypes.c_int]
    loaded.riffd_elu.restype = None
    return loaded


@functools.cache
def available() -> bool:
    """Whether the kernel runs here (else callers keep PyTorch's ELU)."""
    try:
        _library()
    except NativeUnavailable:
        return False
    return True


def fits(x: torch.Tensor) -> bool:
    """Whether the kernel takes `x`: contiguous float32 on the CPU, where the kernel runs."""
    return x.dtype == torch.float32 and x.device.type == "cpu" and x.is_contiguous() and available()


def elu(x: torch.Tensor, alpha: float) -> torch.Tensor:
    """`F.elu(x, alpha)` within 2e-7 * alpha (exactly x where x >= 0), as a new tensor; `x` must fit."""
    if not fits(x):
        raise ValueError(f"native elu takes contiguous float32 on the CPU, got {x.dtype} on {x.device}")
    out = torch.empty_like(x)
    # ctypes releases the GIL for the call.
    _library().riffd_elu(x.data_ptr(), out.data_ptr(), x.numel(), alpha, torch.get_num_threads())
    return out
