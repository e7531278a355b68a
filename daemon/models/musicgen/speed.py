"""Speed levers of the decode engine, chosen once in the backend's load step.

`EngineOptions` names the weight format and whether the per-frame step is compiled; the
`Linear` classes hold one projection's weights in that format. Everything else in the engine
is format-agnostic: it only calls `linear(x)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from protocol.errors import InvalidArgument

#: Weight formats and the activation dtype each computes in.
FORMATS: dict[str, torch.dtype] = {
    "float32": torch.float32,  # the checkpoint's own tensors, no copy: exact parity with transformers
    "bfloat16": torch.bfloat16,  # half the bytes per step; fast on AVX-512 BF16 / AMX CPUs and on GPUs
    "float16": torch.float16,  # GPU only: CPUs have no fast fp16 matmul
    "int8": torch.bfloat16,  # weight-only int8 (a scale per output row), bf16 activations
}


@dataclass(frozen=True)
class EngineOptions:
    """How the streaming engine runs; chosen at load, never per request."""

    # Weight format of the decoder's projections; see FORMATS.
    weights: str = "float32"
    # torch.compile the one-frame step (with CUDA graphs on a GPU): pays a compile at warm-up.
    compile: bool = False
    # Run a short generation at load so the first request does not pay for lazy initialisation.
    warmup: bool = True

    @property
    def dtype(self) -> torch.dtype:
        return FORMATS[self.weights]

    @property
    def name(self) -> str:
        return self.weights + ("+compile" if self.compile else "")

    def validate(self, device: torch.device) -> "EngineOptions":
        """Return self, or raise InvalidArgument for a format this device cannot run."""
        if self.weights not in FORMATS:
            raise InvalidArgument(f"unknown engine weight format {self.weights!r}; use one of {', '.join(FORMATS)}")
        if self.weights == "float16" and device.type == "cpu":
            raise InvalidArgument("float16 weights need a GPU; use bfloat16 or int8 on the CPU")
        return self

    @classmethod
    def parse(cls, spec: str) -> "EngineOptions":
        """'float32', 'int8+compile', 'bfloat16+nowarmup': the command line's spelling."""
        parts = spec.strip().split("+")
        flags = set(parts[1:])
        unknown = flags - {"compile", "nowarmup"}
        if unknown:
            raise InvalidArgument(f"unknown engine flag(s) {sorted(unknown)} in {spec!r}; use +compile or +nowarmup")
        return cls(weights=parts[0], compile="compile" in flags, warmup="nowarmup" not in flags)


class DenseLinear:
    """`x @ W.T` for one or more weight matrices side by side (their outputs concatenated).

    In float32 the checkpoint's own tensors are used as they are (no copy); otherwise they are
    concatenated once into one matrix of the compute dtype, so a fused projection is one matmul.
    """

    def __init__(self, weights: Sequence[torch.Tensor], dtype: torch.dtype) -> None:
        if dtype == torch.float32 and all(w.dtype == torch.float32 for w in weights):
            self.parts = list(weights)
        else:
            self.parts = [torch.cat(list(weights)).to(dtype).contiguous()]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.parts) == 1:
            return F.linear(x, self.parts[0])
        return torch.cat([F.linear(x, w) for w in self.parts], dim=-1)

    @property
    def nbytes(self) -> int:
        return sum(w.numel() * w.element_size() for w in self.parts)


class Int8Linear:
    """Weight-only int8: symmetric per-row scales, bf16 activations, `[..., in] -> [..., out]`."""

    def __init__(self, weights: Sequence[torch.Tensor]) -> None:
        full = torch.cat(list(weights)).float()
        scales = full.abs().amax(dim=1).clamp(min=1e-12) / 127.0
        self.weight = torch.round(full / scales[:, None]).clamp(-127, 127).to(torch.int8).contiguous()
        self.scales = scales.to(torch.bfloat16)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1])
        out = torch._weight_int8pack_mm(flat, self.weight, self.scales)
        return out.view(*x.shape[:-1], -1)

    @property
    def nbytes(self) -> int:
        return self.weight.numel() + self.scales.numel() * self.scales.element_size()


Linear = DenseLinear | Int8Linear


def make_linear(weights: Sequence[torch.Tensor], options: EngineOptions) -> Linear:
    """One projection (several fused when given several matrices) in the options' format."""
    if options.weights == "int8":
        return Int8Linear(weights)
    return DenseLinear(weights, options.dtype)
