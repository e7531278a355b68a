"""Python side of `int8_matvec.c`: pack int8 weights once, multiply a few activation rows by them
(activations carried at 16 bits, or at 8 bits for the int8a8 mode)."""

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
    loaded.riffd_int8_matvec.argtypes = [_ptr, _i64, _i64, _ptr, _ptr, _ptr, _ptr, _i64, ctypes.c_int]
    loaded.riffd_int8_matvec.restype = None
    loaded.riffd_int8a8_matvec.argtypes = loaded.riffd_int8_matvec.argtypes
    loaded.riffd_int8a8_matvec.restype = None
    for name in ("riffd_int8_matvec_gelu", "riffd_int8a8_matvec_gelu"):
        getattr(loaded, name).argtypes = loaded.riffd_int8_matvec.argtypes
        getattr(loaded, name).restype = None
    return loaded


@dataclass(frozen=True)
class PackedInt8:
    """Weights `[n, k]` as int8 codes times a float32 scale per row, in the kernel's block layout."""

    packed: torch.Tensor  # int8 [n / block_rows, k / group, block_rows, group]
    row_sums: torch.Tensor  # int32 [n]: each row's sum of codes
    scales: torch.Tensor  # float32 [n]
    rows: int
    cols: int
    #: How the kernel quantises each activation row: 16 bits (int8) or 8 (int8a8, `matvec`).
    activation_bits: int = 16

    @property
    def nbytes(self) -> int:
        return self.packed.numel() + self.row_sums.numel() * 4 + self.scales.numel() * 4

    def row_slice(self, start: int, stop: int) -> PackedInt8:
        """Output rows `start:stop` as weights of their own: views of these tensors (whole blocks,
        `start` and `stop` multiples of the block rows), so the same bytes and, row for row, the same
        results."""
        block_rows = self.packed.shape[2]
        if start % block_rows or stop % block_rows or not 0 <= start < stop <= self.rows:
            raise ValueError(f"rows {start}:{stop} are not whole blocks of {block_rows} within {self.rows}")
        return PackedInt8(packed=self.packed[start // block_rows:stop // block_rows], row_sums=self.row_sums[start:stop],
                          scales=self.scales[start:stop], rows=stop - start, cols=self.cols,
                          activation_bits=self.activation_bits)

    def codes(self) -> torch.Tensor:
        """The int8 codes `[n, k]` back in row-major order."""
        return self.packed.permute(0, 2, 1, 3).reshape(self.rows, self.cols)

    def dequantized(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The weights `[n, k]` the kernel multiplies by."""
        return (self.codes().to(dtype) * self.scales[:, None].to(dtype)).contiguous()


#: Activation precisions the kernels have (`PackedInt8.activation_bits`).
ACTIVATION_BITS = (16, 8)


def tile_rows() -> int:
    """The fewest activation rows whose products go through the tile unit (AMX, int8_matvec.c) in this
    process; 0 where they never do (no AMX, the OS refused it, or another branch)."""
    return int(_library().riffd_int8_tile_rows())


def kernel_layout() -> tuple[int, int, int]:
    """This build's packed layout: (block rows, inputs a group, column multiple). A matrix's rows must be
    whole blocks and its columns a multiple of the last (`pack`)."""
    loaded = _library()
    return int(loaded.riffd_int8_block_rows()), int(loaded.riffd_int8_group()), int(loaded.riffd_int8_col_multiple())


def pack(codes: torch.Tensor, scales: torch.Tensor, activation_bits: int = 16, *,
         huge_pages: bool = True) -> PackedInt8:
    """Lay out int8 `codes` `[n, k]` (scales `[n]`) for the kernel that quantises activations to
    `activation_bits`; NativeUnavailable if it cannot run them. `huge_pages` False keeps the
    packed bytes in ordinary pages (bench.huge_pages compares the two)."""
    if activation_bits not in ACTIVATION_BITS:
        raise ValueError(f"the int8 kernels carry activations at {ACTIVATION_BITS} bits, not {activation_bits}")
    if codes.device.type != "cpu" or scales.device.type != "cpu":
        # The kernel reads host memory: a GPU tensor's address there would crash the process.
        raise NativeUnavailable(f"riffd's int8 kernel runs on the CPU; these weights are on {codes.device}")
    loaded = _library()
    block_rows, group, max_k = loaded.riffd_int8_block_rows(), loaded.riffd_int8_group(), loaded.riffd_int8_max_k()
    col_multiple = loaded.riffd_int8_col_multiple()
    rows, cols = codes.shape
    if rows % block_rows or cols % col_multiple or cols > max_k:
        raise NativeUnavailable(f"a [{rows}, {cols}] matrix does not fit the kernel's blocks "
                                f"(rows % {block_rows}, columns % {col_multiple}, columns <= {max_k})")
    packed = codes.to(torch.int8).reshape(rows // block_rows, block_rows, cols // group, group)
    # Every step streams these bytes: from huge pages, not 4 KiB ones (huge_pages.py).
    packed = packed.permute(0, 2, 1, 3).contiguous()
    return PackedInt8(packed=huge_copy(packed) if huge_pages else packed,
                      row_sums=codes.to(torch.int32).sum(dim=1, dtype=torch.int32).contiguous(),
                      scales=scales.to(torch.float32).contiguous(), rows=rows, cols=cols,
                      activation_bits=activation_bits)


def matvec(x: torch.Tensor, weights: PackedInt8, *, gelu: bool = False) -> torch.Tensor:
    """`x` `[m, k]` (float32, CPU) times the weights' transpose: `[m, n]` float32, each row of `x`
    quantised on its own to `weights.activation_bits`; with `gelu`, exact GELU on the result as the
    native step's fc1 takes it (each block's outputs as they are written: `riffd_gelu`'s bits)."""
    if x.dtype != torch.float32 or x.device.type != "cpu" or x.dim() != 2 or x.shape[1] != weights.cols:
        raise ValueError(f"int8 matvec needs float32 [m, {weights.cols}] on the CPU, got {x.dtype} {tuple(x.shape)}")
    x = x.contiguous()
    out = torch.empty((x.shape[0], weights.rows), dtype=torch.float32)
    # ctypes releases the GIL for the call, so the daemon's other threads run meanwhile.
    name = ("riffd_int8a8_matvec" if weights.activation_bits == 8 else "riffd_int8_matvec") + ("_gelu" if gelu else "")
    kernel = getattr(_library(), name)
    kernel(x.data_ptr(), x.shape[0], weights.cols, weights.packed.data_ptr(), weights.row_sums.data_ptr(),
           weights.scales.data_ptr(), out.data_ptr(), weights.rows, torch.get_num_threads())
    return out
