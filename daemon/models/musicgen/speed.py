"""Speed levers of the decode engine, chosen once in the backend's load step.

`EngineOptions` names the weight format and whether the per-frame step is compiled; the
`Linear` classes hold one projection's weights in that format. Everything else in the engine
is format-agnostic: it only calls `linear(x)`.
"""

from __future__ import annotations

import functools
import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from daemon.native import NativeUnavailable, f32_matmul, int8_matvec
from protocol.errors import InvalidArgument

log = logging.getLogger(__name__)

#: Weight formats and the activation dtype each computes in.
FORMATS: dict[str, torch.dtype] = {
    "float32": torch.float32,  # the checkpoint's own tensors, no copy: exact parity with transformers
    "bfloat16": torch.bfloat16,  # half the bytes per step; fast on AVX-512 BF16 / AMX CPUs and on GPUs
    "float16": torch.float16,  # GPU only: CPUs have no fast fp16 matmul
    # weight-only int8 (a scale per output row), float32 activations: riffd's own kernel (CPU)
    "int8": torch.float32,
    "int4": torch.bfloat16,  # weight-only int4 in groups of 64 (scale and offset each), bf16 activations (CPU)
    # int8 weights (a scale per output row) times int8 activations quantised per step (fbgemm, CPU):
    # PyTorch's fastest int8 kernel, kept to compare with riffd's own (int8).
    "int8dyn": torch.float32,
}

#: int4 weights share a scale and an offset per this many input columns.
INT4_GROUP = 64

#: Columns the draft engine proposes per verifying pass (+draft).
SPECULATIVE_LOOKAHEAD = 4


@dataclass(frozen=True)
class EngineOptions:
    """How the streaming engine runs; chosen at load, never per request."""

    # Weight format of the decoder's projections; see FORMATS.
    weights: str = "float32"
    # torch.compile the one-frame step (with CUDA graphs on a GPU): pays a compile at warm-up.
    compile: bool = False
    # Run a short generation at load so the first request does not pay for lazy initialisation.
    warmup: bool = True
    # Speculative decoding: a quantised copy of the model drafts `SPECULATIVE_LOOKAHEAD` columns,
    # these weights check them all in one pass. The result is distributed exactly as these
    # weights' own sampling (greedy: the very same codes); only the speed changes.
    draft: bool = False

    @property
    def dtype(self) -> torch.dtype:
        return FORMATS[self.weights]

    @property
    def name(self) -> str:
        return self.weights + ("+compile" if self.compile else "") + ("+draft" if self.draft else "")

    def draft_options(self, device: torch.device) -> "EngineOptions":
        """The drafting engine's options: int8 on the CPU (riffd's kernels), float16 on a GPU."""
        return EngineOptions(weights="int8" if device.type == "cpu" else "float16", warmup=False)

    def validate(self, device: torch.device) -> "EngineOptions":
        """Return self, or raise InvalidArgument for a format this device cannot run."""
        if self.weights not in FORMATS:
            raise InvalidArgument(f"unknown engine weight format {self.weights!r}; use one of {', '.join(FORMATS)}")
        if self.weights == "float16" and device.type == "cpu":
            raise InvalidArgument("float16 weights need a GPU; use bfloat16 or int8 on the CPU")
        if self.weights in ("int8", "int4", "int8dyn") and device.type != "cpu":
            raise InvalidArgument(f"{self.weights} weights run on the CPU only; use bfloat16 or float16 on a GPU")
        if self.draft and (self.weights != "float32" or self.compile):
            raise InvalidArgument("+draft speeds up float32 (drafts in int8 on the CPU, float16 on a GPU); "
                                  f"not {self.name}")
        return self

    @classmethod
    def parse(cls, spec: str) -> "EngineOptions":
        """'float32', 'int8+compile', 'bfloat16+nowarmup', 'float32+draft': the command line's spelling."""
        parts = spec.strip().split("+")
        flags = set(parts[1:])
        unknown = flags - {"compile", "nowarmup", "draft"}
        if unknown:
            raise InvalidArgument(f"unknown engine flag(s) {sorted(unknown)} in {spec!r}; "
                                  "use +compile, +draft or +nowarmup")
        return cls(weights=parts[0], compile="compile" in flags, warmup="nowarmup" not in flags, draft="draft" in flags)


class DenseLinear:
    """`x @ W.T` for one or more weight matrices side by side (their outputs concatenated).

    In float32 the checkpoint's own tensors are used as they are (no copy); otherwise they are
    concatenated once into one matrix of the compute dtype, so a fused projection is one matmul.
    With `few_rows`, 3 to `f32_matmul.max_rows()` rows go through riffd's float32 kernel, which
    reads the weights once at memory speed where sgemm slows down (+draft's checking pass);
    every other call stays on F.linear, so float32's exact parity is untouched.
    """

    def __init__(self, weights: Sequence[torch.Tensor], dtype: torch.dtype, few_rows: bool = False) -> None:
        if dtype == torch.float32 and all(w.dtype == torch.float32 for w in weights):
            self.parts = list(weights)
        else:
            self.parts = [torch.cat(list(weights)).to(dtype).contiguous()]
        fitting = few_rows and all(f32_matmul.fits(w) for w in self.parts)
        self.few_rows_limit = f32_matmul.max_rows() if fitting else 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.numel() // x.shape[-1]
        if 2 < rows <= self.few_rows_limit:
            flat = x.reshape(rows, x.shape[-1])
            out = torch.cat([f32_matmul.matmul(flat, w) for w in self.parts], dim=-1)
            return out.view(*x.shape[:-1], -1)
        if len(self.parts) == 1:
            return F.linear(x, self.parts[0])
        return torch.cat([F.linear(x, w) for w in self.parts], dim=-1)

    @property
    def nbytes(self) -> int:
        return sum(w.numel() * w.element_size() for w in self.parts)


class Int8Linear:
    """Weight-only int8: symmetric per-row scales, float32 activations, `[..., in] -> [..., out]`.

    A decode step's few rows run riffd's own kernel (`daemon/native/int8_matvec.c`: VNNI,
    activations carried at 16-bit precision), which reads the weights near memory bandwidth; a
    prefill's many rows multiply by the dequantised weights, one matrix at a time. Where the kernel
    cannot run (no C compiler, no VNNI), PyTorch's weight-only int8 kernel does, slower.
    """

    #: Up to this many rows go through the matrix-vector kernel (it reads the weights once per 4 rows).
    KERNEL_ROWS = 8

    def __init__(self, weights: Sequence[torch.Tensor]) -> None:
        full = torch.cat(list(weights)).float()
        scales = full.abs().amax(dim=1).clamp(min=1e-12) / 127.0
        codes = torch.round(full / scales[:, None]).clamp(-127, 127).to(torch.int8)
        self.packed: int8_matvec.PackedInt8 | None = None
        try:
            self.packed = int8_matvec.pack(codes, scales)
        except NativeUnavailable as exc:
            _warn_fallback(str(exc))
            self.weight, self.scales = codes.contiguous(), scales

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1])
        if self.packed is None:
            out = torch._weight_int8pack_mm(flat, self.weight, self.scales)
        elif flat.shape[0] <= self.KERNEL_ROWS:
            out = int8_matvec.matvec(flat, self.packed)
        else:
            out = F.linear(flat, self.packed.dequantized(flat.dtype))
        return out.view(*x.shape[:-1], -1)

    @property
    def nbytes(self) -> int:
        if self.packed is not None:
            return self.packed.nbytes
        return self.weight.numel() + self.scales.numel() * self.scales.element_size()


@functools.cache  # once per reason, not once per projection
def _warn_fallback(reason: str) -> None:
    """Say why int8 runs on PyTorch's slower kernel."""
    log.warning("int8 engine: riffd's kernel is unavailable (%s); using PyTorch's int8 kernel, slower", reason)


class Int4Linear:
    """Weight-only int4, asymmetric per group of `INT4_GROUP` inputs, bf16 activations (CPU kernel)."""

    def __init__(self, weights: Sequence[torch.Tensor]) -> None:
        full = torch.cat(list(weights)).float()
        rows, cols = full.shape
        self.group = min(INT4_GROUP, cols)
        groups = full.reshape(rows, cols // self.group, self.group)
        low, high = groups.amin(dim=-1, keepdim=True), groups.amax(dim=-1, keepdim=True)
        scales = (high - low).clamp(min=1e-6) / 15
        codes = torch.round((groups - low) / scales).clamp(0, 15).to(torch.int32).reshape(rows, cols)
        # The kernel computes (code - 8) * scale + offset, so the offset is the group's minimum plus 8 steps.
        offsets = low + 8 * scales
        self.scales_offsets = torch.cat([scales, offsets], dim=-1).transpose(0, 1).contiguous().to(torch.bfloat16)
        self.weight = torch._convert_weight_to_int4pack_for_cpu(codes, 2)
        self.rows = rows

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1])
        out = torch._weight_int4pack_mm_for_cpu(flat, self.weight, self.group, self.scales_offsets)
        return out.view(*x.shape[:-1], -1)

    def dequantized(self) -> torch.Tensor:
        """The weights `[out, in]` float32 the kernel multiplies by (for tests)."""
        eye = torch.eye(self.weight.shape[-1] * 2, dtype=torch.bfloat16)
        return self(eye).float().T

    @property
    def nbytes(self) -> int:
        return self.weight.numel() * self.weight.element_size() + self.scales_offsets.numel() * 2


class DynamicInt8Linear:
    """fbgemm's dynamic int8 linear: per-row int8 weights prepacked once, float32 in and out."""

    def __init__(self, weights: Sequence[torch.Tensor]) -> None:
        full = torch.cat(list(weights)).float().contiguous()
        scales = full.abs().amax(dim=1).clamp(min=1e-12).double() / 127.0
        # PyTorch marks its quantised tensors deprecated (in favour of torchao); fbgemm's kernel is
        # still the fastest int8 GEMV at batch 2 on x86, so the warning is silenced here, once, at load.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            quantized = torch.quantize_per_channel(full, scales, torch.zeros(full.shape[0], dtype=torch.long), 0,
                                                   torch.qint8)
            self.packed = torch.ops.quantized.linear_prepack(quantized, None)
        self._nbytes = full.numel() + full.shape[0] * 8

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1]).float()
        out = torch.ops.quantized.linear_dynamic(flat, self.packed, False)
        return out.view(*x.shape[:-1], -1)

    @property
    def nbytes(self) -> int:
        return self._nbytes


Linear = DenseLinear | Int8Linear | Int4Linear | DynamicInt8Linear


def make_linear(weights: Sequence[torch.Tensor], options: EngineOptions) -> Linear:
    """One projection (several fused when given several matrices) in the options' format."""
    if options.weights == "int8":
        return Int8Linear(weights)
    if options.weights == "int4":
        return Int4Linear(weights)
    if options.weights == "int8dyn":
        return DynamicInt8Linear(weights)
    return DenseLinear(weights, options.dtype, few_rows=options.draft)
