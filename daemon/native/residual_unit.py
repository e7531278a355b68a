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
    loaded.riffd_residual_unit.argtypes = [_ptr, _i64, _ptr, _i64, _i64, _i64, _i64, _i64, _i64, _ptr, _ptr,
                                           ctypes.c_float, _ptr, _ptr, ctypes.c_float, _ptr, ctypes.c_int]
    loaded.riffd_residual_unit.restype = None
    loaded.riffd_residual_unit_panel.restype = _i64
    loaded.riffd_residual_unit_fits.argtypes = [_i64, _i64, _i64]
    loaded.riffd_residual_unit_fits.restype = ctypes.c_int
    return loaded


@functools.cache
def panel_columns() -> int:
    """Output columns of a weight panel (the packing `pack` makes); 0 where the kernel cannot run."""
    try:
        return int(_library().riffd_residual_unit_panel())
    except NativeUnavailable:
        return 0


def fits(conv: torch.Tensor, pointwise: torch.Tensor, dilation: int) -> bool:
    """Whether the kernel takes a unit of these convolutions' weights (`[hidden, channels, kernel]` and
    `[channels, hidden, 1]`, float32 on the CPU): both output counts multiples of `panel_columns()`, a
    block's buffers holding at least a tile of rows."""
    if not panel_columns() or conv.dim() != 3 or pointwise.dim() != 3:
        return False
    hidden, channels, kernel = conv.shape
    return (all(w.dtype == torch.float32 and w.device.type == "cpu" for w in (conv, pointwise))
            and pointwise.shape == (channels, hidden, 1)
            and bool(_library().riffd_residual_unit_fits(channels, hidden, (kernel - 1) * dilation)))


def pack(weight: torch.Tensor) -> torch.Tensor:
    """A convolution's `[out, in, kernel]` weights as the kernel's panels `[out / P, kernel * in, P]`
    (P = `panel_columns()`): a panel's row is one (tap, input) pair's weights for P outputs."""
    out, inputs, kernel = weight.shape
    panel = panel_columns()
    rows = weight.permute(2, 1, 0).reshape(kernel * inputs, out // panel, panel)
    return rows.permute(1, 0, 2).contiguous()


def unit(pieces: tuple[torch.Tensor, ...], conv: torch.Tensor, conv_bias: torch.Tensor | None, dilation: int,
         shortcut: int, alpha_in: float, pointwise: torch.Tensor, pointwise_bias: torch.Tensor | None,
         alpha_hidden: float) -> torch.Tensor:
    """A residual unit's outputs `[B, n, C]`, y[t] = x[t + shortcut] + pointwise_bias +
    conv_1x1(elu(conv_k(elu(x)) + conv_bias)), from its padded time-major inputs x `[B, n + span, C]`
    given as one or two pieces along time (a stream's kept rows and its new ones: never joined),
    each contiguous float32; `conv` and `pointwise` packed (`pack`). The sums are float32's in
    another order than `F.conv1d`'s; both ELUs riffd's (elu.py)."""
    batch, channels = pieces[0].shape[0], pieces[0].shape[2]
    hidden = conv.shape[0] * conv.shape[2]
    kernel = conv.shape[1] // channels
    span = (kernel - 1) * dilation
    length = sum(piece.shape[1] for piece in pieces)
    n = length - span
    if (not 1 <= len(pieces) <= 2 or n <= 0 or not 0 <= shortcut <= span or pointwise.shape[1] != hidden
            or any(p.dtype != torch.float32 or not p.is_contiguous() or p.shape[0] != batch or p.shape[2] != channels
                   for p in pieces)
            or not conv.is_contiguous() or not pointwise.is_contiguous()
            or not _library().riffd_residual_unit_fits(channels, hidden, span)
            or any(b is not None and (b.dtype != torch.float32 or not b.is_contiguous() or b.shape != (size,))
                   for b, size in ((conv_bias, hidden), (pointwise_bias, channels)))):
        raise ValueError(f"residual_unit takes one or two contiguous float32 pieces [B, m, {channels}] of more than "
                         f"{span} rows in all, got {[tuple(p.shape) for p in pieces]}")
    head, tail = pieces[0], pieces[-1]
    y = head.new_empty((batch, n, channels))
    threads = torch.get_num_threads()
    for b in range(batch):
        # On the pool (torch's thread count), like conv_taps. ctypes releases the GIL for the call.
        _library().riffd_residual_unit(
            head[b].data_ptr(), head.shape[1] if len(pieces) == 2 else length, tail[b].data_ptr(), n, channels, hidden,
            kernel, dilation, shortcut, conv.data_ptr(), None if conv_bias is None else conv_bias.data_ptr(),
            alpha_in, pointwise.data_ptr(), None if pointwise_bias is None else pointwise_bias.data_ptr(),
            alpha_hidden, y[b].data_ptr(), threads)
    return y
