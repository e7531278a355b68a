"""Python side of `sampling.c`: a step's guided, tempered, top-k-cut scores in one native pass."""

from __future__ import annotations

import ctypes
import functools

import torch

from daemon.native import NativeUnavailable, library

_i64, _ptr = ctypes.c_int64, ctypes.c_void_p


@functools.cache
def _function() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    """The C function, or None where riffd's library cannot be built or loaded here (then PyTorch's path)."""
    try:
        loaded = library()
    except NativeUnavailable:
        return None
    function = loaded.riffd_sampling_scores
    function.argtypes = [_ptr, _i64, _i64, ctypes.c_int, ctypes.c_float, ctypes.c_float, _i64, _ptr, _ptr]
    function.restype = _i64
    return function


def scores_into(out: torch.Tensor, logits: torch.Tensor, *, guided: bool, guidance_scale: float, temperature: float,
                top_k: int) -> bool:
    """Write `out` `[R, V]` = (guidance, then / temperature, then every code below the row's k-th best
    at -inf) of `logits` (`[2R, V]`, conditional rows first, when `guided`; else `[R, V]`): the bits of
    `apply_guidance` then `distribution`'s first steps in PyTorch. False where it cannot here (no
    library, not contiguous float32 CPU tensors, a NaN in the scores): then `out` means nothing."""
    function = _function()
    rows, vocab = out.shape
    if (function is None or out.dtype != torch.float32 or logits.dtype != torch.float32 or out.device.type != "cpu"
            or logits.device.type != "cpu" or not out.is_contiguous() or not logits.is_contiguous()
            or tuple(logits.shape) != ((2 * rows if guided else rows), vocab)):
        return False
    work = torch.empty(vocab, dtype=torch.float32)
    nans = function(logits.data_ptr(), rows, vocab, int(guided), guidance_scale, temperature, top_k, out.data_ptr(),
                    work.data_ptr())
    return nans == 0
