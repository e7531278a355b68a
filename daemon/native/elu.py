"""Python side of `elu.c`: ELU a vector at a time (PyTorch's runs a scalar expm1 an element)."""

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
    loaded.riffd_elu_pairs.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p, ctypes.c_float,
                                       ctypes.c_void_p, ctypes.c_int]
    loaded.riffd_elu_pairs.restype = None
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


def elu(x: torch.Tensor, alpha: float, *, out: torch.Tensor | None = None) -> torch.Tensor:
    """`F.elu(x, alpha)` within 2e-7 * alpha (exactly x where x >= 0), into `out` (a new tensor if None;
    `x` itself for in place); `x` and `out` must fit and have one shape."""
    if not fits(x) or (out is not None and (not fits(out) or out.shape != x.shape)):
        raise ValueError(f"native elu takes contiguous float32 on the CPU, got {x.dtype} on {x.device}")
    if out is None:
        out = torch.empty_like(x)
    # One thread: on two, the output lands split between the cores' caches and the next layer's
    # product (MKL's) ran slower by more than the ELU saved; on one, a streamed decode's ELUs took
    # 1.2 against PyTorch's 4.1 ms per second of audio, the whole decode 161 against 170 (A/B in
    # one process, random/musicgen-small's codec, AMD EPYC Zen 4, 2 threads, load ~3).
    # ctypes releases the GIL for the call.
    _library().riffd_elu(x.data_ptr(), out.data_ptr(), x.numel(), alpha, 1)
    return out


#: Columns `elu_pairs` takes are multiples of this (the kernels' widest vector; any branch's divides it).
PAIRS_COL_MULTIPLE = 16


def elu_pairs(x: torch.Tensor, last: torch.Tensor, alpha: float) -> torch.Tensor:
    """`[B, n, 2 * C]` from `x` `[B, n, C]` and `last` `[B, 1, C]`: row t is elu(x[t - 1]) then elu(x[t]),
    the row before x[0] being `last` as it is (an ELU output already); every ELU the bits `elu` gives.
    `x` must fit, C a multiple of PAIRS_COL_MULTIPLE, n >= 1."""
    batch, n, cols = x.shape
    if not fits(x) or cols % PAIRS_COL_MULTIPLE or not n or last.shape != (batch, 1, cols) or last.dtype != torch.float32:
        raise ValueError(f"elu_pairs takes contiguous float32 [B, n, C % {PAIRS_COL_MULTIPLE}] on the CPU, got "
                         f"{tuple(x.shape)} {x.dtype} and last {tuple(last.shape)}")
    last = last.contiguous()
    pairs = x.new_empty((batch, n, 2 * cols))
    for b in range(batch):
        # On the pool (torch's thread count), unlike `elu`: the pairs feed a product at once, and
        # there is no OpenMP thread to wake for the copies it replaces. ctypes releases the GIL.
        _library().riffd_elu_pairs(x[b].data_ptr(), n, cols, last[b].data_ptr(), alpha, pairs[b].data_ptr(),
                                   torch.get_num_threads())
    return pairs
