"""How the MusicGen decode engine runs: its weight format and speed levers, as the command line
spells them (`int8`, `float32+draft`, `bfloat16+compile+nowarmup`).

Torch-free on purpose: the daemon's config, the CLI and `--engine auto` validate and compare
options without loading PyTorch. What each format means in tensors lives in `speed.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from protocol.errors import InvalidArgument

#: Weight formats of the decoder's projections (each format's compute dtype: `speed.COMPUTE_DTYPES`).
WEIGHT_FORMATS: tuple[str, ...] = (
    "float32",  # the checkpoint's own tensors, no copy: exact parity with transformers
    "bfloat16",  # half the bytes per step; fast on AVX-512 BF16 / AMX CPUs and on GPUs
    "float16",  # GPU only: CPUs have no fast fp16 matmul
    "int8",  # weight-only int8 (a scale per output row), float32 activations: riffd's own kernel (CPU)
    # int8's weights, each activation row quantised to 8 bits in the kernel (one product instruction
    # per 4 weights instead of two: fastest at several rows, continuous batching), int8 lm heads (CPU)
    "int8a8",
    "int4",  # weight-only int4, a bfloat16 scale per group of 32 inputs, int8 lm heads: riffd's own kernel (CPU)
    "int8dyn",  # int8 weights times int8 activations quantised per step (fbgemm, CPU)
)
#: Formats that run on the CPU only.
CPU_ONLY_FORMATS: frozenset[str] = frozenset({"int8", "int8a8", "int4", "int8dyn"})
#: Formats whose decode step is riffd's native one where its kernels run (CPU).
NATIVE_FORMATS: frozenset[str] = frozenset({"int8", "int8a8", "int4"})
#: Flags after the format, `+`-separated.
FLAGS: tuple[str, ...] = ("compile", "nowarmup", "draft", "kv4")

#: Columns the draft engine proposes per verifying pass (+draft).
SPECULATIVE_LOOKAHEAD = 4


class HasDeviceType(Protocol):
    """A torch.device, or anything else with its `type` ('cpu', 'cuda', 'mps')."""

    @property
    def type(self) -> str: ...


@dataclass(frozen=True)
class EngineOptions:
    """How the streaming engine runs; chosen at load, never per request."""

    # Weight format of the decoder's projections; see WEIGHT_FORMATS.
    weights: str = "float32"
    # torch.compile the one-frame step (with CUDA graphs on a GPU): pays a compile at warm-up.
    compile: bool = False
    # Run a short generation at load so the first request does not pay for lazy initialisation.
    warmup: bool = True
    # Speculative decoding: a quantised copy of the model drafts `SPECULATIVE_LOOKAHEAD` columns,
    # these weights check them all in one pass. The result is distributed exactly as these
    # weights' own sampling (greedy: the very same codes); only the speed changes.
    draft: bool = False
    # The self-attention cache in 4-bit codes with a scale per vector instead of int8 (kv_cache.py),
    # after an int8 head of the window's first 64 positions: late in a window the cache is a third of
    # a step's read at int8, half that at 4 bits. 4-bit from the first position cost agreement there
    # (few slots to average a rounding over: 86.5 % of float32's greedy codes over the first 24 frames
    # against int8's 96.9 %); with the int8 head those frames are the int8 cache's very steps, and
    # late ones agree as int8's do (bench/kv4_agreement.py, random musicgen-small, int8a8). auto adds
    # it to a native mode unless its late steps measure slower (engine_choice.MIN_KV4_LATE_RATIO).
    kv4: bool = False

    @property
    def name(self) -> str:
        return (self.weights + ("+compile" if self.compile else "") + ("+draft" if self.draft else "")
                + ("+kv4" if self.kv4 else ""))

    def heads_options(self) -> EngineOptions:
        """The lm heads' options: int8 in the int4 and int8a8 modes (the heads turn the hidden state
        straight into logits, and are a few percent of the bytes; int4 there cost most of int4's
        disagreement with float32 on the debug preset), the engine's own otherwise."""
        return EngineOptions(weights="int8", warmup=False) if self.weights in ("int4", "int8a8") else self

    def draft_options(self, device: HasDeviceType | str) -> EngineOptions:
        """The drafting engine's options: int8 on the CPU (riffd's kernels), float16 on a GPU."""
        return EngineOptions(weights="int8" if _device_type(device) == "cpu" else "float16", warmup=False)

    def validate(self, device: HasDeviceType | str) -> EngineOptions:
        """Return self, or raise InvalidArgument for a format this device ('cpu', a torch.device) cannot run."""
        device_type = _device_type(device)
        if self.weights not in WEIGHT_FORMATS:
            raise InvalidArgument(f"unknown engine weight format {self.weights!r}; use one of {', '.join(WEIGHT_FORMATS)}")
        if self.weights == "float16" and device_type == "cpu":
            raise InvalidArgument("float16 weights need a GPU; use bfloat16 or int8 on the CPU")
        if self.weights in CPU_ONLY_FORMATS and device_type != "cpu":
            raise InvalidArgument(f"{self.weights} weights run on the CPU only; use bfloat16 or float16 on a GPU")
        if self.draft and (self.weights != "float32" or self.compile):
            raise InvalidArgument("+draft speeds up float32 (drafts in int8 on the CPU, float16 on a GPU); "
                                  f"not {self.name}")
        if self.kv4 and (self.weights not in NATIVE_FORMATS or self.compile):
            raise InvalidArgument(f"+kv4 (a 4-bit self-attention cache) goes with {', '.join(sorted(NATIVE_FORMATS))} "
                                  f"without +compile; not {self.name}")
        return self

    @classmethod
    def parse(cls, spec: str) -> EngineOptions:
        """'float32', 'int8+compile', 'bfloat16+nowarmup', 'float32+draft', 'int8a8+kv4': the command line's spelling.

        Checks the spelling only; `validate` checks the combination against a device.
        """
        parts = spec.strip().split("+")
        flags = set(parts[1:])
        unknown = flags - set(FLAGS)
        if unknown:
            raise InvalidArgument(f"unknown engine flag(s) {sorted(unknown)} in {spec!r}; "
                                  "use +compile, +draft, +kv4 or +nowarmup")
        if parts[0] not in WEIGHT_FORMATS:
            raise InvalidArgument(f"engine {spec!r}: the format is one of {', '.join(WEIGHT_FORMATS)} "
                                  "(or auto, the default: the fastest of them that agrees with float32)")
        return cls(weights=parts[0], compile="compile" in flags, warmup="nowarmup" not in flags, draft="draft" in flags,
                   kv4="kv4" in flags)


def _device_type(device: HasDeviceType | str) -> str:
    return device if isinstance(device, str) else device.type
