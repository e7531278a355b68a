"""Python side of `conv_taps.c`: a stride-1 convolution of few output channels over time-major inputs."""

from __future__ import annotations

import ctypes
import functools

import torch

from daemon.native import NativeUnavailable, kernels

_i64, _ptr = ctypes.c_int64, ctypes.c_void_p


@functools.cache  # a failure raises, so it is not cached
def _library() -> ctypes.CDLL:
    loaded = kernels()
    loaded.riffd_conv_taps.argtypes = [_ptr, _i64, _i64, _i64, _i64, _ptr, _ptr, _i64, _ptr, ctypes.c_int]
    loaded.riffd_conv_taps.restype = None
    loaded.riffd_conv_taps_channel_multiple.restype = _i64
    return loaded


@functools.cache
def channel_multiple() -> int:
    """Input channels the kernel takes are multiples of this; 0 where it cannot run."""
    try:
        return int(_library().riffd_conv_taps_channel_multiple())
    except NativeUnavailable:
        return 0


def fits(weights: torch.Tensor) -> bool:
    """Whether the kernel takes tap-major weights `[out, kernel, in]`: contiguous float32 on the CPU,
    `in` a multiple of `channel_multiple()`."""
    multiple = channel_multiple()
    return (bool(multiple) and weights.dtype == torch.float32 and weights.device.type == "cpu"
            and weights.dim() == 3 and weights.is_contiguous() and weights.shape[2] % multiple == 0)


def conv(x: torch.Tensor, weights: torch.Tensor, bias: torch.Tensor | None, dilation: int) -> torch.Tensor:
    """Outputs `[B, n, out]` of time-major inputs `x` `[B, n + span, in]` (span = (kernel - 1) * dilation),
    each output t reading inputs t + j * dilation: `F.conv1d`'s, summed in another order."""
    batch, length, channels = x.shape
    out, kernel = weights.shape[0], weights.shape[1]
    n = length - (kernel - 1) * dilation
    if not fits(weights) or weights.shape[2] != channels or n <= 0 or x.dtype != torch.float32 or (
            bias is not None and (bias.shape != (out,) or bias.dtype != torch.float32)):
        raise ValueError(f"conv_taps takes float32 [B, > {(kernel - 1) * dilation}, {weights.shape[2]}] inputs, got "
                         f"{tuple(x.shape)} {x.dtype}")
    x = x.contiguous()
    bias = None if bias is None else bias.contiguous()
    y = torch.empty((batch, n, out), dtype=torch.float32)
    for b in range(batch):
        # ctypes releases the GIL for the call.
        _library().riffd_conv_taps(x[b].data_ptr(), n, channels, kernel, dilation, weights.data_ptr(),
                                   None if bias is None else bias.data_ptr(), out, y[b].data_ptr(),
                                   torch.get_num_threads())
    return y
