"""Weight formats of the decode engine in tensors, chosen once in the backend's load step.

`options.EngineOptions` names the format; the `Linear` classes hold one projection's weights
in it. Everything else in the engine is format-agnostic: it only calls `linear(x)`.
"""

from __future__ import annotations

import functools
import logging
import platform
import warnings
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from daemon.models.musicgen.options import EngineOptions
from daemon.native import NativeUnavailable, f32_matmul, int4_matvec, int8_matvec
from protocol.errors import InvalidArgument

log = logging.getLogger(__name__)

#: The activation dtype each weight format (`options.WEIGHT_FORMATS`) computes in.
COMPUTE_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
    "int8": torch.float32,
    "int8a8": torch.float32,  # float32 between the projections; the kernel quantises each row to 8 bits
    "int4": torch.float32,  # riffd's int4 kernel takes float32 activations (speed.Int4Linear)
    "int8dyn": torch.float32,
}

#: int4 weights share a scale per this many input columns (fewer where a matrix is narrower).
INT4_GROUP = 32


def compute_dtype(options: EngineOptions) -> torch.dtype:
    """The dtype activations (and float caches) take under `options`."""
    return COMPUTE_DTYPES[options.weights]


class DenseLinear:
    """`x @ W.T` for one or more weight matrices side by side (their outputs concatenated).

    In float32 the checkpoint's own tensors are used as they are (no copy); otherwise they are
    concatenated once into one matrix of the compute dtype, so a fused projection is one matmul.
    riffd's kernel (`f32_matmul.c`, weights read once at near memory speed, where PyTorch's library
    calls reach a quarter to a half of it at a decode step's few rows) multiplies:
    - with `few_rows` (float32+draft's checking pass), 3 to `f32_matmul.max_rows()` rows of float32;
    - with `native_bf16` (the bfloat16 mode on x86), 1 to `f32_matmul.max_rows()` rows of bfloat16.
    Every other call stays on F.linear: float32's 1 or 2 rows in particular, so that float32 is
    bit for bit what transformers computes (a kernel summing in another order is not).
    """

    def __init__(self, weights: Sequence[torch.Tensor], dtype: torch.dtype, few_rows: bool = False,
                 native_bf16: bool = False) -> None:
        if dtype == torch.float32 and all(w.dtype == torch.float32 for w in weights):
            self.parts = list(weights)
        else:
            self.parts = [torch.cat(list(weights)).to(dtype).contiguous()]
        self.dtype = dtype
        native = (few_rows and dtype == torch.float32) or (native_bf16 and dtype == torch.bfloat16)
        fitting = native and all(f32_matmul.fits(w) for w in self.parts)
        self.native_rows = range(3 if dtype == torch.float32 else 1, (f32_matmul.max_rows() if fitting else 0) + 1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.numel() // x.shape[-1]
        if rows in self.native_rows:
            flat = x.reshape(rows, x.shape[-1])
            out = torch.cat([f32_matmul.matmul(flat, w) for w in self.parts], dim=-1).to(self.dtype)
            return out.view(*x.shape[:-1], -1)
        if len(self.parts) == 1:
            return F.linear(x, self.parts[0])
        return torch.cat([F.linear(x, w) for w in self.parts], dim=-1)

    @property
    def rows_independent(self) -> bool:
        """Whether every row up to the kernel's limit goes through riffd's kernel (bfloat16), which
        sums each row on its own in one order: a row's result is then the same whatever rows come with it."""
        return self.native_rows.start == 1 and len(self.native_rows) > 0

    def independent_rows(self, x: torch.Tensor) -> torch.Tensor:
        """`self(x)` through riffd's kernel in passes of its row limit: each row's result is the one it
        gets alone, so streams batched together read the weights once and decode exactly as alone."""
        assert self.rows_independent
        flat = x.reshape(-1, x.shape[-1])
        out = torch.cat([self(part) for part in flat.split(self.native_rows.stop - 1)])
        return out.view(*x.shape[:-1], -1)

    @property
    def nbytes(self) -> int:
        return sum(w.numel() * w.element_size() for w in self.parts)


class Int8Linear:
    """Weight-only int8: symmetric per-row scales, float32 activations, `[..., in] -> [..., out]`.

    Every row runs riffd's own kernel (`daemon/native/int8_matvec.c`: VNNI, activations carried at
    16-bit precision, or 8 in int8a8), which reads the weights near memory bandwidth for a decode
    step's few rows, and for a prefill's hundreds still multiplies in integers: a later long-form
    window's 1202-row context prefill took 5.6 s on float32 dequantised weights (MKL) on the 2-core
    Zen 4, the kernel a fraction of that (README). Every row is its own, whatever its neighbours, so
    a prefill, a drafted batch and a stream in a shared step all get the bits the row gets alone.
    Where the kernel cannot run (no C compiler, no VNNI), PyTorch's weight-only int8 kernel does.
    """

    def __init__(self, weights: Sequence[torch.Tensor], activation_bits: int = 16) -> None:
        """`activation_bits` 8: the int8a8 mode's kernel, each activation row quantised to 8 bits
        (where the kernel cannot run, PyTorch's weight-only int8 runs as for int8)."""
        full = torch.cat(list(weights)).float()
        scales = full.abs().amax(dim=1).clamp(min=1e-12) / 127.0
        codes = torch.round(full / scales[:, None]).clamp(-127, 127).to(torch.int8)
        self.packed: int8_matvec.PackedInt8 | None = None
        try:
            self.packed = int8_matvec.pack(codes, scales, activation_bits)
        except NativeUnavailable as exc:
            _warn_fallback(str(exc))
            self.weight, self.scales = codes.contiguous(), scales

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1])
        if self.packed is None:
            out = torch._weight_int8pack_mm(flat, self.weight, self.scales)
        else:
            out = int8_matvec.matvec(flat, self.packed)
        return out.view(*x.shape[:-1], -1)

    def independent_rows(self, x: torch.Tensor) -> torch.Tensor:
        """`self(x)` through riffd's kernel: each row's result is the one it gets alone (the kernel
        quantises each activation row on its own and sums in integers), so streams batched
        together decode exactly as they do alone."""
        assert self.packed is not None
        return self(x)

    @property
    def out_features(self) -> int:
        return self.packed.rows if self.packed is not None else int(self.weight.shape[0])

    def row_slice(self, start: int, stop: int) -> Int8Linear:
        """Output rows `start:stop` (whole kernel blocks) as a projection of their own, a view of
        these weights: a stacked projection's parts without a second copy. On riffd's kernel its
        results are the bits these rows get here (each output row's sum is its own, exact)."""
        part = Int8Linear.__new__(Int8Linear)
        part.packed = self.packed.row_slice(start, stop) if self.packed is not None else None
        if self.packed is None:
            part.weight, part.scales = self.weight[start:stop], self.scales[start:stop]
        return part

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
    """Weight-only int4: codes 0..15 for (code - 8) * scale, a bfloat16 scale per group of `INT4_GROUP`
    inputs (`int4_matvec.quantize`), float32 activations, `[..., in] -> [..., out]`.

    A decode step's few rows run riffd's own kernel (`daemon/native/int4_matvec.c`), which reads
    half of int8's bytes; a prefill's many rows multiply by the dequantised weights. Where the
    kernel cannot run, PyTorch's int4 kernel multiplies by the same weights (in bfloat16).
    """

    KERNEL_ROWS = 8

    def __init__(self, weights: Sequence[torch.Tensor]) -> None:
        full = torch.cat(list(weights)).float()
        rows, cols = full.shape
        group = next((g for g in (INT4_GROUP, 32, 16) if cols % g == 0), None)
        if group is None:
            raise InvalidArgument(f"int4 needs a multiple of 16 input columns; this model has a projection of {cols}")
        self.group = group
        self.weights: int4_matvec.Int4Weights | None = int4_matvec.quantize(full, group)
        self.packed: int4_matvec.PackedInt4 | None = None
        try:
            self.packed = int4_matvec.pack(self.weights)
        except NativeUnavailable as exc:
            _warn_int4_fallback(str(exc))
            codes = self.weights.codes.to(torch.int32)
            zeros = torch.zeros_like(self.weights.scales)
            # PyTorch's kernel computes (code - 8) * scale + zero: the same weights with zero 0.
            self.scales_and_zeros = torch.stack([self.weights.scales, zeros], dim=-1).transpose(0, 1).contiguous()
            self.weight = torch._convert_weight_to_int4pack_for_cpu(codes, 2)
        else:
            self.weights = None  # the packed copy is the one kept; unpacked() gives the codes back

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1])
        if self.packed is None:
            out = torch._weight_int4pack_mm_for_cpu(flat.bfloat16(), self.weight, self.group,
                                                    self.scales_and_zeros).float()
        elif flat.shape[0] <= self.KERNEL_ROWS:
            out = int4_matvec.matvec(flat.float(), self.packed)
        else:
            out = F.linear(flat, self.packed.dequantized(flat.dtype))
        return out.view(*x.shape[:-1], -1)

    def independent_rows(self, x: torch.Tensor) -> torch.Tensor:
        """`self(x)` with every row through riffd's kernel, whatever their number: each row's result
        is the one it gets alone (each activation row is quantised on its own, a group's sum is exact
        and the groups are added in one order), so batched streams decode exactly as alone."""
        assert self.packed is not None
        flat = x.reshape(-1, x.shape[-1]).float()
        out = torch.cat([int4_matvec.matvec(part, self.packed) for part in flat.split(self.KERNEL_ROWS)])
        return out.view(*x.shape[:-1], -1)

    def dequantized(self) -> torch.Tensor:
        """The weights `[out, in]` float32 the kernel multiplies by."""
        return self.packed.dequantized() if self.packed is not None else self.weights.dequantized()

    @property
    def nbytes(self) -> int:
        if self.packed is not None:
            return self.packed.nbytes
        return self.weight.numel() * self.weight.element_size() + self.scales_and_zeros.numel() * 2


@functools.cache  # once per reason
def _warn_int4_fallback(reason: str) -> None:
    log.warning("int4 engine: riffd's kernel is unavailable (%s); using PyTorch's int4 kernel, slower", reason)


class DynamicInt8Linear:
    """fbgemm's dynamic int8 linear: per-row int8 weights prepacked once, float32 in and out.

    Where the kernel sums pairs of u8 x s8 products in int16 (fbgemm without AVX-512 VNNI:
    AVX2's maddubs), a pair of large products saturates and the result is wrong (greedy agreement
    0.71 on an AVX2-only EPYC). There the activations are quantised to 7 bits (`reduce_range`):
    two products then fit in int16 exactly, and the mode keeps its accuracy on every CPU.
    """

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
        self.reduce_range = dynamic_int8_saturates()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1]).float()
        out = torch.ops.quantized.linear_dynamic(flat, self.packed, self.reduce_range)
        return out.view(*x.shape[:-1], -1)

    @property
    def nbytes(self) -> int:
        return self._nbytes


@functools.cache
def dynamic_int8_saturates() -> bool:
    """Whether PyTorch's dynamic int8 kernel saturates sums of two u8 x s8 products (int16).

    Probed rather than read from the CPU flags: fbgemm's own dispatch (and its
    FBGEMM_ENABLE_INSTRUCTIONS override) decides which kernel runs. Activations of 1.0 quantise to
    255 and weights of 1.0 to 127: a pair sums to 64770, past int16's 32767, so a saturating
    kernel returns about half of the exact 64.
    """
    ones = torch.ones(16, 64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        weights = torch.quantize_per_channel(ones, torch.full((16,), 1 / 127, dtype=torch.float64),
                                             torch.zeros(16, dtype=torch.long), 0, torch.qint8)
        out = torch.ops.quantized.linear_dynamic(torch.ones(2, 64), torch.ops.quantized.linear_prepack(weights, None),
                                                 False)
    saturates = not torch.allclose(out, torch.full_like(out, 64.0), rtol=0.01)
    if saturates:
        log.info("int8dyn: PyTorch's dynamic int8 kernel sums products in int16 on this CPU (no AVX-512 VNNI): "
                 "activations are quantised to 7 bits so that no sum saturates")
    return saturates


Linear = DenseLinear | Int8Linear | Int4Linear | DynamicInt8Linear


def make_linear(weights: Sequence[torch.Tensor], options: EngineOptions) -> Linear:
    """One projection (several fused when given several matrices) in the options' format."""
    if options.weights == "int8":
        return Int8Linear(weights)
    if options.weights == "int8a8":
        return Int8Linear(weights, activation_bits=8)
    if options.weights == "int4":
        return Int4Linear(weights)
    if options.weights == "int8dyn":
        return DynamicInt8Linear(weights)
    return DenseLinear(weights, compute_dtype(options), few_rows=options.draft,
                       native_bf16=not options.compile and native_bf16_measured_faster())


def native_bf16_measured_faster() -> bool:
    """Whether the bfloat16 mode's decode steps use riffd's kernel: on x86, where it was measured
    faster than oneDNN's bfloat16 matmul (bench/dense_matvec.py: AMD EPYC Zen 4 with AVX-512 BF16, and
    its AVX2 and AVX-VNNI builds with oneDNN capped to match). Not on ARM, where no speed can be
    measured here; nor under torch.compile, which cannot trace a foreign call."""
    return platform.machine() in ("x86_64", "AMD64", "i686")
