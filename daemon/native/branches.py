"""The x86 builds of the kernels (simd.h's branches) this CPU can run, for the tests and benches.

The library is built for the CPU it runs on (`-march=native`); `RIFFD_NATIVE_CFLAGS` builds
another branch on the same machine. A branch runs here natively, or, where this CPU lacks its
product instruction, through a stand-in simd.h provides: AVX-512 VL's encoding of VNNI on an
AVX-512 VNNI CPU (the same instruction on 256-bit vectors), or an exact AVX2 emulation of it.
AVX-512 itself cannot be emulated: it is tested on CPUs that have it.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path


#: GCC flags that keep x86's vector registers 16-31 out of a build. AVX-512's encodings reach them,
#: AVX2's and AVX-VNNI's do not: the AVX-VNNI branch built through AVX-512 VL here keeps to the 16 an
#: AVX-VNNI CPU has, so that it spills where a real build does (GCC 12, -S: int8_matvec.c 11 spill
#: stores against 5 with all 32, attention.c 22 against 12, decoder_step.c 10 against 3).
UPPER_VECTOR_REGISTERS_OFF = " ".join(f"-ffixed-xmm{register}" for register in range(16, 32))
#: The AVX-VNNI branch on an AVX-512 VNNI CPU: the 256-bit code, VNNI through AVX-512 VL's encoding.
AVX_VNNI_ON_AVX512_CFLAGS = f"-DRIFFD_SIMD_256 {UPPER_VECTOR_REGISTERS_OFF}"


@dataclass(frozen=True)
class Branch:
    isa: str  # what riffd_isa() reports for this build
    cflags: str  # RIFFD_NATIVE_CFLAGS that build it on this CPU


def cpu_name() -> str:
    """The CPU's model name, as benchmarks report it beside their figures."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_flags() -> frozenset[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def runnable_here(flags: frozenset[str] | None = None) -> list[Branch]:
    """Every x86 branch that runs on this CPU (the native one first), with the flags that build it."""
    have = cpu_flags() if flags is None else flags
    if not {"avx2", "fma"} <= have:
        return []
    found = []
    if {"avx512f", "avx512bw", "avx512_vnni"} <= have:
        found.append(Branch("avx512vnni", ""))
    if "avx_vnni" in have:
        found.append(Branch("avxvnni", "-mno-avx512f -mavxvnni"))
    elif {"avx512_vnni", "avx512vl"} <= have:
        found.append(Branch("avxvnni(avx512vl)", AVX_VNNI_ON_AVX512_CFLAGS))
    else:
        found.append(Branch("avxvnni(emulated)", "-mno-avx512f -mno-avxvnni -DRIFFD_EMULATE_VNNI"))
    found.append(Branch("avx2", "-mno-avx512f -mno-avxvnni"))
    return found
