"""Python side of `embed.c`: a decode step's input rows (codebook embeddings summed, plus the position's)
in one native call, the bits of `_embed(codes) + positions[p]` in PyTorch."""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable
from typing import Any

import torch

from daemon.native import NativeUnavailable, optional_function

_i64, _ptr = ctypes.c_int64, ctypes.c_void_p


@functools.cache
def _function() -> Callable[..., Any] | None:
    """The C function, or None where riffd's library cannot be built or loaded here."""
    return optional_function("riffd_embed_inputs", [_ptr, _i64, _i64, _i64, _ptr, _i64, _ptr, _i64, _ptr], _i64)


class InputEmbedder:
    """`into(out, codes, position)` for one model's tables `[K, V + 1, H]` and positions `[P, H]`
    (float32, contiguous, on the CPU: `fits` says whether they are and the library runs here)."""

    def __init__(self, tables: torch.Tensor, positions: torch.Tensor) -> None:
        function = _function()
        if function is None:
            raise NativeUnavailable("riffd's library does not run here")
        self.function = function
        self.tables, self.positions = tables, positions
        self.books, self.codes_per_book, self.hidden = tables.shape
        self._tables, self._positions = tables.data_ptr(), positions.data_ptr()

    @staticmethod
    def fits(tables: torch.Tensor, positions: torch.Tensor) -> bool:
        return (_function() is not None and all(t.dtype == torch.float32 and t.device.type == "cpu" and t.is_contiguous()
                                                for t in (tables, positions))
                and tables.dim() == 3 and positions.dim() == 2 and tables.shape[-1] == positions.shape[-1])

    def into(self, out: torch.Tensor, codes: torch.Tensor, position: int) -> None:
        """Write `out` `[R, H]` (contiguous float32 rows): rows i < B the sum of codes `[B, K]` row i's
        embeddings plus position `position`'s; the rows after (a guided window's null rows) copies of them."""
        prompts = codes.shape[0]
        if (codes.shape[1] != self.books or out.shape[1] != self.hidden or out.shape[0] not in (prompts, 2 * prompts)
                or not out.is_contiguous() or out.dtype != torch.float32):
            raise ValueError(f"codes {tuple(codes.shape)} and rows {tuple(out.shape)} do not fit tables "
                             f"{tuple(self.tables.shape)}")
        if not 0 <= position < self.positions.shape[0]:
            raise ValueError(f"position {position} outside the model's {self.positions.shape[0]}")
        if codes.dtype != torch.int64 or not codes.is_contiguous() or codes.device.type != "cpu":
            codes = codes.to("cpu", torch.int64).contiguous()
        if self.function(self._tables, self.books, self.codes_per_book, self.hidden, codes.data_ptr(), prompts,
                         self._positions + 4 * position * self.hidden, out.shape[0], out.data_ptr()) < 0:
            raise IndexError(f"a code outside the embedding tables' {self.codes_per_book}")
