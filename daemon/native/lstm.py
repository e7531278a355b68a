"""Python side of `lstm.c`: an LSTM layer's recurrence over a piece of a stream in one native call."""

from __future__ import annotations

import ctypes
import functools

import torch

from daemon.native import NativeUnavailable, kernels
from daemon.native.int8_matvec import PackedInt8

_i64, _ptr = ctypes.c_int64, ctypes.c_void_p

#: The recurrent weight dtypes the kernel reads (bfloat16 widened to float on load).
WEIGHT_DTYPES = (torch.float32, torch.bfloat16)


@functools.cache  # a failure raises, so it is not cached
def _library() -> ctypes.CDLL:
    loaded = kernels()
    loaded.riffd_lstm_steps.argtypes = [_ptr, _i64, _i64, _i64, _ptr, ctypes.c_int, _ptr, _ptr, _ptr, ctypes.c_int]
    loaded.riffd_lstm_steps.restype = None
    loaded.riffd_lstm_steps_int8.argtypes = [_ptr, _i64, _i64, _i64, _ptr, _ptr, _ptr, _ptr, _ptr, _ptr, ctypes.c_int]
    loaded.riffd_lstm_steps_int8.restype = None
    loaded.riffd_lstm_unit_multiple.restype = _i64
    return loaded


def unit_multiple() -> int:
    """Hidden sizes the kernel takes are multiples of this; 0 where the kernel cannot run."""
    try:
        return int(_library().riffd_lstm_unit_multiple())
    except NativeUnavailable:
        return 0


def fits(weight_hh: torch.Tensor) -> bool:
    """Whether the kernel takes `weight_hh` `[4H, H]`: float32 or bfloat16, contiguous, on the CPU,
    H a multiple of `unit_multiple()`."""
    multiple = unit_multiple()
    return (bool(multiple) and weight_hh.dtype in WEIGHT_DTYPES and weight_hh.device.type == "cpu"
            and weight_hh.is_contiguous() and weight_hh.dim() == 2 and weight_hh.shape[0] == 4 * weight_hh.shape[1]
            and weight_hh.shape[1] % multiple == 0)


def lstm_steps(gates_in: torch.Tensor, weight_hh: torch.Tensor, h: torch.Tensor,
               c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the recurrence: `gates_in` `[T, B, 4H]` (the input product plus both biases), `weight_hh`
    `[4H, H]` (a fitting one), `h`, `c` `[B, H]` the state before. Returns the hidden states `[T, B, H]`
    (the last one the new `h`) and the new cell state `[B, H]`; the inputs are left as they were."""
    steps, batch, gates = gates_in.shape
    hidden = weight_hh.shape[1]
    if not fits(weight_hh) or gates != 4 * hidden or h.shape != (batch, hidden) or c.shape != (batch, hidden):
        raise ValueError(f"lstm_steps takes gates [T, B, {4 * hidden}] and state [B, {hidden}], got "
                         f"{tuple(gates_in.shape)}, {tuple(h.shape)}, {tuple(c.shape)}, weights {tuple(weight_hh.shape)} "
                         f"{weight_hh.dtype}")
    gates_in = gates_in.float().contiguous()
    h0 = h.float().contiguous()
    cell = c.float().clone(memory_format=torch.contiguous_format)
    out = torch.empty((steps, batch, hidden), dtype=torch.float32)
    # ctypes releases the GIL for the call.
    _library().riffd_lstm_steps(gates_in.data_ptr(), steps, batch, hidden, weight_hh.data_ptr(),
                                int(weight_hh.dtype == torch.bfloat16), h0.data_ptr(), cell.data_ptr(), out.data_ptr(),
                                torch.get_num_threads())
    return out, cell


def fits_int8(weight_hh: PackedInt8) -> bool:
    """Whether `lstm_steps_int8` takes `weight_hh` (`[4H, H]` packed for 16-bit activations, H a
    multiple of `unit_multiple()`)."""
    multiple = unit_multiple()
    return (bool(multiple) and weight_hh.activation_bits == 16 and weight_hh.rows == 4 * weight_hh.cols
            and weight_hh.cols % multiple == 0)


def lstm_steps_int8(gates_in: torch.Tensor, weight_hh: PackedInt8, h: torch.Tensor,
                    c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`lstm_steps` with int8 recurrent weights (a scale per row): each step's product is
    `int8_matvec.matvec`'s, the hidden state carried at 16 bits."""
    steps, batch, gates = gates_in.shape
    hidden = weight_hh.cols
    if not fits_int8(weight_hh) or gates != 4 * hidden or h.shape != (batch, hidden) or c.shape != (batch, hidden):
        raise ValueError(f"lstm_steps_int8 takes gates [T, B, {4 * hidden}] and state [B, {hidden}], got "
                         f"{tuple(gates_in.shape)}, {tuple(h.shape)}, {tuple(c.shape)}, weights [{weight_hh.rows}, {hidden}]")
    gates_in = gates_in.float().contiguous()
    h0 = h.float().contiguous()
    cell = c.float().clone(memory_format=torch.contiguous_format)
    out = torch.empty((steps, batch, hidden), dtype=torch.float32)
    # ctypes releases the GIL for the call.
    _library().riffd_lstm_steps_int8(gates_in.data_ptr(), steps, batch, hidden, weight_hh.packed.data_ptr(),
                                     weight_hh.row_sums.data_ptr(), weight_hh.scales.data_ptr(), h0.data_ptr(),
                                     cell.data_ptr(), out.data_ptr(), torch.get_num_threads())
    return out, cell
