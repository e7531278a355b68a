"""This machine's CPU as riffd's speed choices see it: its name, its instruction-set class, its cores.

torch-free, so the daemon's status and the engine choice can name the CPU without loading a model.
The classes are the rows of the README's CPU table: what decides which int8 kernels can run.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

#: Instruction-set classes, fastest int8 first (the README's CPU table has one row each).
ISA_CLASSES = ("avx512_vnni", "avx_vnni", "avx2", "neon_dotprod", "neon", "generic")


@dataclass(frozen=True)
class CpuInfo:
    """What /proc/cpuinfo says about the CPU, and how many cores this process may use."""

    model: str  # "AMD EPYC", "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz"
    machine: str  # "x86_64", "aarch64"
    flags: frozenset[str]  # x86 "flags" or ARM "Features"
    cores: int  # logical CPUs this process may run on

    @property
    def isa(self) -> str:
        """The instruction-set class (one of ISA_CLASSES) this CPU belongs to."""
        return isa_class(self.flags, self.machine)

    def describe(self) -> str:
        return f"{self.model} ({self.isa}, {self.cores} core{'' if self.cores == 1 else 's'})"


def isa_class(flags: frozenset[str] | set[str], machine: str) -> str:
    """The class of a CPU with these flags: VNNI (AVX-512 or AVX), AVX2 alone, NEON with or without dot products."""
    if machine in ("aarch64", "arm64"):
        return "neon_dotprod" if "asimddp" in flags else "neon"
    if {"avx512_vnni", "avx512f", "avx512bw"} <= flags:
        return "avx512_vnni"
    if {"avx_vnni", "avx2", "fma"} <= flags:
        return "avx_vnni"
    if {"avx2", "fma"} <= flags:
        return "avx2"
    return "generic"


def parse_cpuinfo(text: str, machine: str, cores: int) -> CpuInfo:
    """A CpuInfo from the text of /proc/cpuinfo (its first processor's entries)."""
    model, flags = "", frozenset[str]()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("model name", "Model", "Hardware", "cpu model") and not model:
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = frozenset(value.split())
    return CpuInfo(model=model or platform.processor() or machine, machine=machine, flags=flags, cores=cores)


def this_cpu() -> CpuInfo:
    """The CPU this process runs on."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: the class still follows from the machine name on ARM
        text = ""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return parse_cpuinfo(text, platform.machine(), cores)
