"""riffd's own native kernels: the C files beside this one, built into one library on first use.

They are built with the system's C compiler (`$CC`, else `cc`) and `-march=native` (64-bit ARM:
ARMv8.2-A with the dot-product instructions, where the CPU has them), so they use exactly the
instruction set of the CPU that runs them (simd.h: AVX-512 VNNI, AVX-VNNI, AVX2 or NEON with dot
products), and cached by a hash of the source, the flags and the compiler's version
(`RIFFD_NATIVE_DIR`, else ~/.cache/riffd/native). A machine without a compiler, or whose CPU
lacks what a kernel needs, gets `NativeUnavailable` with the reason, and the caller falls back to
PyTorch's kernel.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any
from pathlib import Path

from daemon.native.compile import CompileFailed, build_jobs, compile_objects
from daemon.config import environment_c_compiler, environment_native_cflags, environment_native_dir

log = logging.getLogger(__name__)

SOURCE_DIR = Path(__file__).resolve().parent
# -fopenmp-simd: `#pragma omp simd` only; the threads are pool.c's own (no OpenMP runtime, see there).
FLAGS = ("-O3", "-march=native", "-fopenmp-simd", "-pthread", "-shared", "-fPIC", "-std=gnu11")


def flags() -> tuple[str, ...]:
    """`build_flags` for this machine, then `RIFFD_NATIVE_CFLAGS` (split on spaces): e.g. `-mno-avx512f`
    builds the AVX2 kernels on an AVX-512 machine, which is how the tests check both."""
    return build_flags(os.uname().machine, _cpu_flags()) + environment_native_cflags()


def build_flags(machine: str, cpu_flags: str) -> tuple[str, ...]:
    """FLAGS with `-march=native` replaced by `arch_flags` for that CPU."""
    arch = arch_flags(machine, cpu_flags)
    return tuple(part for flag in FLAGS for part in (arch if flag == "-march=native" else (flag,)))


#: 64-bit ARM CPUs with the dot-product instructions (/proc/cpuinfo's Features: asimddp) get this
#: target, the one tests/native/test_kernel_harness.py builds and checks under qemu.
ARM_DOTPROD_FLAGS = ("-march=armv8.2-a+dotprod",)


def arch_flags(machine: str, cpu_flags: str) -> tuple[str, ...]:
    """The `-march` for a CPU (`os.uname().machine`, its /proc/cpuinfo flags or Features line).

    x86: `-march=native`. 64-bit ARM: ARMv8.2-A with dot products where the Features say `asimddp`
    (Apple M1 and later, Graviton 2 and later, Raspberry Pi 5), named rather than left to the
    compiler's detection so that the build is the one the tests check; without them `-march=native`
    builds the stubs, and `kernels()` says why.
    """
    if machine in ("aarch64", "arm64") and "asimddp" in cpu_flags.split():
        return ARM_DOTPROD_FLAGS
    return ("-march=native",)


_lock = threading.Lock()
_loaded: list[ctypes.CDLL] = []  # the one library, once loaded


class NativeUnavailable(RuntimeError):
    """A native kernel cannot be built or loaded here; the message says why."""


def cache_dir() -> Path:
    return environment_native_dir() or Path.home() / ".cache" / "riffd" / "native"


def _compiler() -> str:
    compiler = environment_c_compiler()
    if shutil.which(compiler) is None:
        raise NativeUnavailable(f"no C compiler ({compiler!r} not found; install gcc, or set CC)")
    return compiler


def _compiler_version(compiler: str) -> str:
    done = subprocess.run([compiler, "--version"], capture_output=True, text=True, check=False)
    return done.stdout.splitlines()[0] if done.stdout else compiler


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return ""


def library() -> ctypes.CDLL:
    """The library built from every `.c` file here, compiling it if this machine has no copy yet."""
    with _lock:
        if _loaded:
            return _loaded[0]
        sources = sorted(SOURCE_DIR.glob("*.c"))
        compiler = _compiler()
        digest = hashlib.sha256()
        for path in sorted(SOURCE_DIR.glob("*.[ch]")):
            digest.update(path.name.encode() + path.read_bytes())
        # -march=native: a library built on one CPU may not run on another that shares this folder.
        digest.update(" ".join((*flags(), _compiler_version(compiler), os.uname().machine, _cpu_flags())).encode())
        target = cache_dir() / f"libriffd-{digest.hexdigest()[:16]}.so"
        if not target.exists():
            _build(compiler, sources, target)
        try:
            loaded = ctypes.CDLL(str(target))
        except OSError as exc:
            raise NativeUnavailable(f"cannot load {target}: {exc}") from exc
        _loaded.append(loaded)
        # Which branch a process runs (an emulated CPU class's RIFFD_NATIVE_CFLAGS reach a daemon
        # child through its environment): the benchmarks read this line from the daemon's log.
        loaded.riffd_isa.restype = ctypes.c_char_p
        tiles = loaded.riffd_int8_tile_rows()  # (asks the OS for AMX's tile registers, where the CPU has them)
        log.info("riffd's native kernels: %s branch (%s)%s", loaded.riffd_isa().decode(), target.name,
                 f", int8 products of {tiles} rows or more on the AMX tile unit" if tiles else "")
        import daemon

        if daemon.TORCH_LOADED_FIRST:
            log.warning("torch was imported before riffd, so its OpenMP threads spin-wait and the native decode "
                        "may run several times slower on this process's main thread: import riffd's `daemon` "
                        "before torch, or set OMP_WAIT_POLICY=PASSIVE")
        return loaded


def optional_function(name: str, argtypes: list[Any], restype: Any) -> Callable[..., Any] | None:
    """The library's C function `name` with its signature set, or None where the library cannot be
    built or loaded here (the caller then takes PyTorch's path)."""
    try:
        loaded = library()
    except NativeUnavailable:
        return None
    function = getattr(loaded, name)
    function.argtypes = argtypes
    function.restype = restype
    return function


#: A build takes ~5 s on 2 cores (compile.py); one that hangs must not hold the engine's load forever.
BUILD_TIMEOUT_S = 300


def kernels() -> ctypes.CDLL:
    """The library, where this CPU can run its kernels (AVX2 and FMA at least, VNNI where there; 64-bit
    ARM with the dot-product instructions)."""
    loaded = library()
    if not loaded.riffd_int8_supported():
        machine = os.uname().machine
        if machine in ("aarch64", "arm64"):
            raise NativeUnavailable("this ARM CPU has no dot-product instructions (asimddp), which riffd's kernels "
                                    "need (ARMv8.2-A+dotprod: Apple M1 and later, Graviton 2 and later, Raspberry Pi 5)")
        needs = "AVX2 and FMA" if machine in ("x86_64", "i686", "AMD64") else f"a simd.h branch for {machine}"
        raise NativeUnavailable(f"this CPU lacks what riffd's kernels need ({needs}; built with {' '.join(flags())})")
    return loaded


def isa() -> str:
    """The instruction set the kernels were built for ('avx512vnni', 'avxvnni', 'avx2'), or 'none'."""
    try:
        loaded = library()
    except NativeUnavailable:
        return "none"
    loaded.riffd_isa.restype = ctypes.c_char_p
    return str(loaded.riffd_isa().decode())


def _build(compiler: str, sources: list[Path], target: Path) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # Build in a folder of its own beside the target and rename: a second process building at the
        # same time, or one killed half way, never leaves a truncated library under the final name.
        build_dir = Path(tempfile.mkdtemp(prefix="build-", dir=target.parent))
    except OSError as exc:
        raise NativeUnavailable(f"cannot write riffd's native kernels to {target.parent}: {exc} "
                                "(set RIFFD_NATIVE_DIR to a writable folder)") from exc
    started = time.monotonic()
    log.info("building riffd's native kernels (%d compilers at once): %s %s", build_jobs(), compiler,
             " ".join(flags()))
    try:
        objects = compile_objects(compiler, [flag for flag in flags() if flag != "-shared"], sources, build_dir,
                                  BUILD_TIMEOUT_S)
        partial = build_dir / target.name
        command = [compiler, *flags(), *map(str, objects), "-o", str(partial)]
        done = subprocess.run(command, capture_output=True, text=True, check=False,
                              timeout=max(1.0, BUILD_TIMEOUT_S - (time.monotonic() - started)))
        if done.returncode != 0:
            raise CompileFailed(done.stderr.strip()[-500:])
        os.replace(partial, target)
    except subprocess.TimeoutExpired as exc:
        raise NativeUnavailable(f"{compiler} took over {BUILD_TIMEOUT_S} s to build riffd's native kernels") from exc
    except CompileFailed as exc:
        raise NativeUnavailable(f"{compiler} could not build riffd's native kernels: {str(exc)[-500:]}") from exc
    finally:
        shutil.rmtree(build_dir, ignore_errors=True)
    log.info("built riffd's native kernels in %.1f s", time.monotonic() - started)
