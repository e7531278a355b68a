"""In what precision a prompt becomes the decoder's condition: the text encoder and the
cross-attention key/value projections, both on the path from a fresh prompt to its first sound.

float32 engines keep float32 (their audio equals transformers' own). The approximate ones (int8,
int8a8, int4, int8dyn, bfloat16) run both in bfloat16 where bfloat16 matmuls are native (x86 with
AVX-512 BF16 or AMX): on the 2-core AMD EPYC Zen 4 that took a 27-token prompt's t5-base from
85 to 40 ms and its 48 cross projections from 44-59 to 24 ms (`/tmp`-free figures: see the
first chunk's figures in docs/realtime-log.md), for hidden states within 1 % and keys within 0.3 % of float32's.
The text encoder itself is faster still on riffd's int8 kernel there (`encoder_precision`), except
where bfloat16 runs on AMX tiles.

On other x86 CPUs (AVX2, AVX-VNNI: oneDNN emulates bfloat16 there, slower than float32) they run
both through riffd's int8 kernel instead (`int8_matvec.c`, int8 weights with a scale per row,
activations at 16 bits), which multiplies a prompt's few dozen rows in integers: with AVX2 caps on
the same Zen 4 (`--emulate avx2`), the bench prompt's 41-token t5-base took 36 ms against float32's
81, its 48 cross projections 17 ms against 43, for hidden states within 2 % of float32's (bound 3 %,
`text_encoder.INT8_MAX_RELATIVE_ERROR`) and keys within 1 %.
"""

from __future__ import annotations

import platform
from typing import Literal

import torch
import torch.nn.functional as F

from daemon.config import library_isa_overrides
from daemon.cpu import this_cpu
from daemon.models.musicgen.options import EngineOptions
from daemon.models.musicgen.speed import Int8Linear

#: How the condition is made: the checkpoint's float32, a bfloat16 copy, or riffd's int8 kernel.
ConditionPrecision = Literal["float32", "bfloat16", "int8"]
#: A cross-attention key or value projection in its condition precision: a float weight `[H, H_cond]`
#: (float32 or bfloat16), or int8 weights run by riffd's kernel.
CrossProjection = torch.Tensor | Int8Linear

#: CPU flags with native bfloat16 dot products (oneDNN's bfloat16 matmul runs on them; without,
#: it emulates bfloat16 and is slower than float32).
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
#: oneDNN ISA caps (ONEDNN_MAX_CPU_ISA / DNNL_MAX_CPU_ISA) below AVX-512 BF16: under them oneDNN
#: emulates bfloat16 even on a CPU that has it (the bench's `--emulate avx2` sets one: t5-base then
#: took 190 ms in bfloat16 against ~85 ms in float32 on the Zen 4).
ONEDNN_CAPS_WITHOUT_BF16 = frozenset({"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE",
                                      "AVX512_CORE_VNNI"})


def fast_bfloat16(device: torch.device) -> bool:
    """Whether bfloat16 matmuls beat float32 ones here: an x86 CPU with native bfloat16 dot
    products (on GPUs the condition stays in the loaded precision)."""
    overrides = library_isa_overrides()
    cap = overrides.get("ONEDNN_MAX_CPU_ISA") or overrides.get("DNNL_MAX_CPU_ISA") or ""
    return (device.type == "cpu" and platform.machine() in ("x86_64", "AMD64")
            and bool(BF16_FLAGS & this_cpu().flags) and cap.upper() not in ONEDNN_CAPS_WITHOUT_BF16)


def int8_kernel_runs(device: torch.device) -> bool:
    """Whether riffd's int8 kernel multiplies the condition here: an x86 CPU it runs on (where its
    speed against float32 was measured; on ARM it was not)."""
    from daemon.models.musicgen.engine_modes import native_int8_problem  # the engine's own check of the kernels

    return device.type == "cpu" and platform.machine() in ("x86_64", "AMD64") and native_int8_problem() is None


def condition_precision(options: EngineOptions | None, device: torch.device) -> ConditionPrecision:
    """float32 for exact engines (float32, float32+draft, transformers' reference loop: None); for
    the approximate ones bfloat16 where it is fast, else int8 where riffd's kernel runs, else float32."""
    if options is None or options.weights == "float32":
        return "float32"
    if fast_bfloat16(device):
        return "bfloat16"
    return "int8" if int8_kernel_runs(device) else "float32"


def encoder_precision(options: EngineOptions | None, device: torch.device) -> ConditionPrecision:
    """The text encoder's precision: float32 for exact engines; for the approximate ones riffd's int8
    kernel wherever it runs, unless bfloat16 runs on AMX tiles, else `condition_precision`'s.

    Where bfloat16 is native through AVX-512 BF16 only (AMD Zen 4), the int8 kernel (16-bit
    activations) still multiplies t5-base's 72 linear layers faster: the 44-token bench prompt took
    35 ms against bfloat16's 51 (2-core EPYC Zen 4), hidden states within 1.9 % of float32's (bound
    3 %), and the int8a8 engine's greedy agreement with float32 was 92.9 / 91.4 % with this condition
    against 93.6 / 92.2 % with float32's own and 94.4 / 91.9 % with bfloat16's (calibration's two
    prompts and two others, 48 frames, random/musicgen-small). The keys stay bfloat16 there: their
    one stacked product (`weights.DecoderWeights.cross_kv`) beat the kernel's 48. AMX multiplies
    bfloat16 several times faster than AVX-512 (not measured here): bfloat16 there."""
    if options is None or options.weights == "float32":
        return "float32"
    amx = fast_bfloat16(device) and "amx_bf16" in this_cpu().flags
    if not amx and int8_kernel_runs(device):
        return "int8"
    return condition_precision(options, device)


def cross_projection(weight: torch.Tensor, precision: ConditionPrecision) -> CrossProjection:
    """A cross-attention key/value projection `[H, H_cond]` in `precision`: float32's own tensor (no
    copy), a bfloat16 copy, or int8 for riffd's kernel (float32 where the kernel cannot take its shape)."""
    weight = weight.detach()
    if precision == "int8":
        linear = Int8Linear([weight])
        return linear if linear.packed is not None else weight
    return weight.to(torch.bfloat16 if precision == "bfloat16" else torch.float32)


def project(states: torch.Tensor, projection: CrossProjection) -> torch.Tensor:
    """`states` `[..., H_cond]` times a cross projection: `[..., H]`, in the projection's float dtype
    (float32 for int8)."""
    if isinstance(projection, torch.Tensor):
        return F.linear(states.to(projection.dtype), projection)
    return projection(states.float())
