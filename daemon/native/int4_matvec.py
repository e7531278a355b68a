"""Python side of `int4_matvec.c`: quantise weights to int4 in groups, pack them, multiply a few rows.

The format: codes 0..15 standing for (code - 8) * scale, one scale per group of `group` inputs of a
row, the scale a bfloat16 value (rounded before the codes are chosen, so the kernel multiplies by
exactly the weights `dequantized` returns). `quantize` is plain PyTorch so that the same weights
exist where the kernel cannot run (PyTorch's int4 kernel takes them there).
"""

from __future__ import annotations

import ctypes
import functools
from dataclasses import dataclass

import torch

from daemon.native import NativeUnavailable, kernels
from daemon.native.huge_pages import huge_copy

_i64, _ptr = ctypes.c_int64, ctypes.c_void_p

@functools.cache  # a failure raises, so it is not cached and the next call says why again
def _library() -> ctypes.CDLL:
    loaded = kernels()
    loaded.riffd_int4_matvec.argtypes = [_ptr, _i64, _i64, _i64, _ptr, _ptr, _i64, ctypes.c_int]
    loaded.riffd_int4_matvec.restype = None
    loaded.riffd_int4_dequantize.argtypes = [_ptr, _i64, _i64, _i64, _ptr, ctypes.c_int]
    loaded.riffd_int4_dequantize.restype = None
    loaded.riffd_int4_group_ok.argtypes = [_i64]
    loaded.riffd_int4_group_bytes.argtypes = [_i64]
    loaded.riffd_int4_group_bytes.restype = _i64
    return loaded


@dataclass(frozen=True)
class Int4Weights:
    """Weights `[n, k]` as int4 codes (0..15, row-major, one byte each) and bfloat16 group scales."""

    codes: torch.Tensor  # uint8 [n, k], values 0..15
    scales: torch.Tensor  # bfloat16 [n, k / group]
    group: int

    def dequantized(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The weights `[n, k]`: (code - 8) * scale."""
        rows, cols = self.codes.shape
        centred = (self.codes.to(torch.int16) - 8).to(dtype).view(rows, cols // self.group, self.group)
        return (centred * self.scales.to(dtype)[:, :, None]).view(rows, cols)


def quantize(weight: torch.Tensor, group: int) -> Int4Weights:
    """Symmetric int4 in groups of `group` inputs: each group's weight of largest magnitude becomes
    exactly -8 steps (the level the positive side lacks), every other weight the nearest level.
    `weight` `[n, k]`, k % group == 0. (Searching a few clipped scales per group lowered a Gaussian
    matrix's error by 2 % of itself, for four times the load time: not worth it.)"""
    rows, cols = weight.shape
    if cols % group:
        raise ValueError(f"{cols} columns are not a whole number of groups of {group}")
    groups = weight.detach().float().reshape(rows, cols // group, group)
    extreme = groups.gather(-1, groups.abs().argmax(dim=-1, keepdim=True))
    scale = (-extreme / 8).to(torch.bfloat16).float()  # rounded first: the codes are chosen for this scale
    safe = torch.where(scale == 0, torch.ones_like(scale), scale)
    codes = (torch.round(groups / safe).clamp(-8, 7) + 8).to(torch.uint8).reshape(rows, cols)
    return Int4Weights(codes=codes.contiguous(), scales=scale.squeeze(-1).to(torch.bfloat16).contiguous(), group=group)


@dataclass(frozen=True)
class PackedInt4:
    """`Int4Weights` in the kernel's layout: per block of 32 rows and group, the codes two to a byte,
    then the block's 32 scales."""

    packed: torch.Tensor  # uint8 [n / 32, k / group, group_bytes]
    rows: int
    cols: int
    group: int

    @property
    def nbytes(self) -> int:
        return self.packed.numel()

    def unpacked(self) -> Int4Weights:
        """The codes and scales back in row-major order."""
        blocks, groups, _ = self.packed.shape
        block_rows = self.rows // blocks
        code_bytes = self.packed[..., : 16 * self.group].reshape(blocks, groups, self.group // 8, block_rows, 4)
        nibbles = torch.stack([code_bytes & 15, code_bytes >> 4], dim=-1)  # [.., p, row, i, half]
        codes = nibbles.permute(0, 3, 1, 2, 5, 4).reshape(self.rows, self.cols)
        scales = self.packed[..., 16 * self.group:].contiguous().view(torch.bfloat16)  # [blocks, groups, rows]
        return Int4Weights(codes=codes.contiguous(), scales=scales.permute(0, 2, 1).reshape(self.rows, groups).contiguous(),
                           group=self.group)

    def dequantized(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The weights `[n, k]` the kernel multiplies by (in C: a prefill asks for them every window)."""
        out = torch.empty((self.rows, self.cols), dtype=torch.float32)
        _library().riffd_int4_dequantize(self.packed.data_ptr(), self.rows, self.cols, self.group, out.data_ptr(),
                                         torch.get_num_threads())
        return out if dtype == torch.float32 else out.to(dtype)


def pack(weights: Int4Weights) -> PackedInt4:
    """Lay out `weights` for the kernel; NativeUnavailable if it cannot run them here."""
    loaded = _library()
    block_rows, max_k = loaded.riffd_int4_block_rows(), loaded.riffd_int4_max_k()
    rows, cols = weights.codes.shape
    group = weights.group
    if rows % block_rows or not loaded.riffd_int4_group_ok(group) or cols % group or cols > max_k:
        raise NativeUnavailable(f"a [{rows}, {cols}] matrix in groups of {group} does not fit the int4 kernel "
                                f"(rows % {block_rows}, groups of 16, 32, 48 or 64, columns <= {max_k})")
    blocks, groups = rows // block_rows, cols // group
    codes = weights.codes.reshape(blocks, block_rows, groups, group // 8, 2, 4)
    codes = codes.permute(0, 2, 3, 1, 5, 4)  # [block, group, p, row, i, half]
    code_bytes = (codes[..., 0] | (codes[..., 1] << 4)).reshape(blocks, groups, 16 * group)
    scales = weights.scales.reshape(blocks, block_rows, groups).permute(0, 2, 1).contiguous()
    scale_bytes = scales.view(torch.uint8).reshape(blocks, groups, 2 * block_rows)
    packed = huge_copy(torch.cat([code_bytes, scale_bytes], dim=-1).contiguous())  # streamed every step: huge_pages.py
    assert packed.shape[-1] == loaded.riffd_int4_group_bytes(group)
    return PackedInt4(packed=packed, rows=rows, cols=cols, group=group)


def matvec(x: torch.Tensor, weights: PackedInt4) -> torch.Tensor:
    """`x` `[m, k]` (float32, CPU) times the weights' transpose: `[m, n]` float32."""
    if x.dtype != torch.float32 or x.device.type != "cpu" or x.dim() != 2 or x.shape[1] != weights.cols:
        raise ValueError(f"int4 matvec needs float32 [m, {weights.cols}] on the CPU, got {x.dtype} {tuple(x.shape)}")
    x = x.contiguous()
    out = torch.empty((x.shape[0], weights.rows), dtype=torch.float32)
    # ctypes releases the GIL for the call.
    _library().riffd_int4_matvec(x.data_ptr(), x.shape[0], weights.cols, weights.group, weights.packed.data_ptr(),
                                 out.data_ptr(), weights.rows, torch.get_num_threads())
    return out
