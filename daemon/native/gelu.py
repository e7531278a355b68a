"""Python side of decoder_step.c's `riffd_gelu`: exact (erf) GELU in place, a vector at a time, for
the native engines' prefill (the native step runs the same function on its rows)."""

from __future__ import annotations

import functools

import torch

from daemon.native import NativeUnavailable
from daemon.native.decoder_step import functions


@functools.cache
def available() -> bool:
    """Whether the kernel runs here (else callers keep PyTorch's GELU)."""
    try:
        functions()
    except NativeUnavailable:
        return False
    return True


def fits(x: torch.Tensor) -> bool:
    """Whether `gelu_` takes `x`: contiguous float32 on the CPU, a multiple of 16 values, where the kernel runs."""
    return (x.dtype == torch.float32 and x.device.type == "cpu" and x.is_contiguous() and x.numel() % 16 == 0
            and available())


def gelu_(x: torch.Tensor) -> torch.Tensor:
    """`F.gelu(x)` in place (erf within 1.5e-7: the result within 1e-7 * (|x| + 1) of it); returns `x`.
    On one thread: PyTorch's took ~12 ms a layer of a window's prefill (2 x 601 x 4096 values, AMD
    EPYC Zen 4, bench.window_prefill), this ~1 ms."""
    if not fits(x):
        raise ValueError(f"native gelu takes contiguous float32 on the CPU in multiples of 16, got {x.dtype} "
                         f"{tuple(x.shape)} on {x.device}")
    functions().riffd_gelu(x.data_ptr(), x.numel())
    return x
