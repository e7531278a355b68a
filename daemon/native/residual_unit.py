"""Python side of `residual_unit.c`: a SEANet residual unit's two convolutions over time-major rows."""

from __future__ import annotations

import ctypes
import functools

import torch

from daemon.native import NativeUnavailable, kernels

_i64, _ptr = ctypes.c_int64, ctypes.c_void_p


@functools.cache  # a failure raises, so it is not cached
def _library() -> ctypes.CDLL:
    loaded = kernels()
    loaded.riffd_residual_unit.argtypes = [_ptr, _i64, _i64, _i64, _i64, _i64, _ptr, _ptr, ctypes.c_float, _ptr, _ptr,
                                           ctypes.c_int]
    loaded.riffd_residual_unit.restype = None
    loaded.riffd_residual_unit_panel.restype = _i64
    loaded.riffd_residual_unit_max_hidden.restype = _i64
    return loaded


@functools.cache
def panel_columns() -> int:
    """Output columns of a weight panel (the packing `pack` makes); 0 where the kernel cannot run."""
    try:
        return int(_library().riffd_residual_unit_panel())
    except NativeUnavailable:
        return 0


def fits(conv: torch.Tensor, pointwise: torch.Tensor) -> bool:
    """Whether the kernel takes a unit of these convolutions' weights (`[hidden, channels, kernel]` and
    `[channels, hidden, 1]`, float32 on the CPU): both output counts multiples of `panel_columns()`,
    the hidden channels at most what a block's buffer holds."""
    panel = panel_columns()
    if not panel or conv.dim() != 3 or pointwise.dim() != 3:
        return False
    hidden, channels = conv.shape[0], conv.shape[1]
    return (all(w.dtype == torch.float32 and w.device.type == "cpu" for w in (conv, pointwise))
            and pointwise.shape == (channels, hidden, 1) and not hidden % panel and not channels % panel
            and hidden <= _library().riffd_residual_unit_max_hidden())


def pack(weight: torch.Tensor) -> torch.Tensor:
    """A convolution's `[out, in, kernel]` weights as the kernel's panels `[out / P, kernel * in, P]`
    (P = `panel_columns()`): a panel's row is one (tap, input) pair's weights for P outputs."""
    out, inputs, kernel = weight.shape
    panel = panel_columns()
    rows = weight.permute(2, 1, 0).reshape(kernel * inputs, out // panel, panel)
    return rows.permute(1, 0, 2).contiguous()


def add_unit(act: torch.Tensor, conv: torch.Tensor, bias: torch.Tensor | None, dilation: int, alpha: float,
             pointwise: torch.Tensor, y: torch.Tensor) -> None:
    """y `[B, n, C]` += conv_1x1(elu(conv_k(act) + bias, alpha)) for the first ELU's outputs `act`
    `[B, n + span, C]` (contiguous float32), `conv` and `pointwise` packed (`pack`); y contiguous.
    The sums are float32's in another order than `F.conv1d`'s; the ELU is riffd's (elu.py)."""
    batch, length, channels = act.shape
    hidden = conv.shape[0] * conv.shape[2]
    kernel = conv.shape[1] // channels
    n = y.shape[1]
    if (act.dtype != torch.float32 or not act.is_contiguous() or not y.is_contiguous() or y.dtype != torch.float32
            or y.shape != (batch, n, channels) or length != n + (kernel - 1) * dilation or not conv.is_contiguous()
            or not pointwise.is_contiguous() or pointwise.shape[1] != hidden
            or (bias is not None and (bias.shape != (hidden,) or not bias.is_contiguous()))):
        raise ValueError(f"residual_unit takes contiguous float32 act [B, n + span, C] and y [B, n, C], got "
                         f"{tuple(act.shape)} {act.dtype} and {tuple(y.shape)}")
    threads = torch.get_num_threads()
    for b in range(batch):
        # On the pool (torch's thread count), like conv_taps. ctypes releases the GIL for the call.
        _library().riffd_residual_unit(act[b].data_ptr(), n, channels, hidden, kernel, dilation, conv.data_ptr(),
                                       None if bias is None else bias.data_ptr(), alpha, pointwise.data_ptr(),
                                       y[b].data_ptr(), threads)
