"""In what precision a prompt becomes the decoder's condition: the text encoder and the
cross-attention key/value projections, both on the path from a fresh prompt to its first sound.

float32 engines keep float32 (their audio equals transformers' own). The approximate ones (int8,
int4, int8dyn, bfloat16) run both in bfloat16 where bfloat16 matmuls are native (x86 with
AVX-512 BF16 or AMX): on the 2-core AMD EPYC Zen 4 that took a 27-token prompt's t5-base from
85 to 40 ms and its 48 cross projections from 44-59 to 24 ms (`/tmp`-free figures: see the
README's first-chunk table), for hidden states within 1 % and keys within 0.3 % of float32's.
"""

from __future__ import annotations

import platform

import torch

from daemon.config import library_isa_overrides
from daemon.cpu import this_cpu
from daemon.models.musicgen.options import EngineOptions

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


def condition_dtype(options: EngineOptions | None, device: torch.device) -> torch.dtype:
    """float32 for exact engines (float32, float32+draft, transformers' reference loop: None),
    else bfloat16 where it is fast."""
    exact = options is None or options.weights == "float32"
    return torch.bfloat16 if not exact and fast_bfloat16(device) else torch.float32
