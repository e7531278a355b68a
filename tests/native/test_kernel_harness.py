"""riffd's native kernels through `kernel_harness.c` (every entry point against double-precision C;
the file states each bound): built for 64-bit ARM with dot products, as `daemon.native` builds them
on a Graviton, an Apple M-series machine under Linux or a Raspberry Pi 5, and run under qemu-user.
qemu proves correctness only: it says nothing about ARM's speed. And built for every x86 branch this
CPU runs (daemon/native/branches.py: AVX-512 VNNI, AVX-VNNI or its stand-in, AVX2), as
tests/musicgen/test_native.py's branch matrix rebuilds the library for its kernel, step and int4 tests."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

import daemon.native
from daemon.native import NativeUnavailable, arch_flags, build_flags
from daemon.native.branches import Branch, runnable_here
from daemon.native.compile import compile_objects

HERE = Path(__file__).resolve().parent
SOURCES = sorted(daemon.native.SOURCE_DIR.glob("*.c"))
# The harness sees the activations the decoder step hands each product (its reference settles
# rounding ties by them): calls to the matvecs (fc1's with its GELU too), and to the quantiser of a
# product run in pieces (riffd_int8_prepare), go through its __wrap_ functions.
WRAPPED = ("riffd_int8_matvec", "riffd_int8a8_matvec", "riffd_int4_matvec", "riffd_int8_matvec_gelu",
           "riffd_int8a8_matvec_gelu", "riffd_int8_prepare")
# Seeds whose decoder-step checks failed before the reference settled rounding ties by the kernel's
# activations (x86 AVX-512 build, Zen 4).
SEEDS_ON_TIES = (4, 7)
CROSS_CC = "aarch64-linux-gnu-gcc"
QEMU = next((name for name in ("qemu-aarch64-static", "qemu-aarch64") if shutil.which(name)), None)
# /proc/cpuinfo's Features line on a Graviton 2 (Neoverse N1) and on a Raspberry Pi 4 (Cortex-A72, no dot products).
GRAVITON2_FEATURES = "Features : fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp ssbs"
PI4_FEATURES = "Features : fp asimd evtstrm crc32 cpuid"
# Checks every build must print (the ones added last: a harness without them would still end "0 failed").
NEWER_CHECKS = ("LSTM int8 weights, 1 row(s)", "LSTM int8 weights, 2 row(s)", "ELU pairs (alpha 1.0), 1500 rows",
                "ELU pairs (alpha 0.5), 3 rows", "conv taps, 1 output(s) x 7 taps (dilation 1) x 64 channels, 1001 steps",
                "conv taps, 3 output(s) x 5 taps (dilation 3)",
                "4-bit cache attention at its largest sums")
# This CPU's own build: the default flags, no branch flags.
NATIVE = Branch("native", "")


def _arm_tools_missing() -> str | None:
    missing = [tool for tool in (CROSS_CC,) if shutil.which(tool) is None] + ([] if QEMU else ["qemu-aarch64(-static)"])
    if missing:
        return (f"{' and '.join(missing)} not installed (Debian: apt-get install gcc-aarch64-linux-gnu "
                "qemu-user-static; `bash .ci/setup.sh --test` installs them)")
    return None


needs_arm_tools = pytest.mark.skipif(_arm_tools_missing() is not None, reason=str(_arm_tools_missing()))


def _build(compiler: str, kernel_flags: tuple[str, ...], folder: Path, link: tuple[str, ...] = ()) -> Path:
    """The kernels with `kernel_flags` (as daemon.native compiles them) and the harness, linked into one program."""
    folder.mkdir(parents=True, exist_ok=True)
    compile_flags = [flag for flag in kernel_flags if flag != "-shared"]
    march = [flag for flag in compile_flags if flag.startswith("-m")]
    objects = compile_objects(compiler, compile_flags, SOURCES, folder, timeout_s=180)
    # The harness's own loops at -O1: gcc 12's aarch64 vectoriser crashes on one of them at -O3.
    objects += compile_objects(compiler, ["-O1", *march, "-pthread", "-std=gnu11", f"-I{daemon.native.SOURCE_DIR}"],
                               [HERE / "kernel_harness.c"], folder, timeout_s=180)
    command = [compiler, "-pthread", *link, *(f"-Wl,--wrap={name}" for name in WRAPPED), *map(str, objects),
               "-lm", "-o", "harness"]
    done = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, f"{' '.join(command)}\n{done.stderr[-3000:]}"
    return folder / "harness"


def _run(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=240)


def _all_passed(done: subprocess.CompletedProcess, checks: int = 206) -> None:
    """The harness ran every check (the newest ones among them, at least `checks` in all) and none failed."""
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    missing = [name for name in NEWER_CHECKS if f"ok   {name}" not in done.stdout]
    assert not missing, f"checks that did not run: {missing}\n{done.stdout[-4000:]}"
    summary = done.stdout.strip().splitlines()[-1]
    assert summary.startswith("harness: ") and summary.endswith(" 0 failed") and int(summary.split()[1]) >= checks


@pytest.fixture(scope="module")
def x86_harness(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Branch], Path]:
    """The harness built for an x86 branch (its RIFFD_NATIVE_CFLAGS after this CPU's flags), once a module."""
    built: dict[str, Path] = {}

    def build(branch: Branch) -> Path:
        if branch.cflags not in built:
            flags = build_flags("x86_64", "") + tuple(branch.cflags.split())
            built[branch.cflags] = _build("cc", flags, tmp_path_factory.mktemp("x86"))
        return built[branch.cflags]

    return build


@pytest.fixture(scope="module")
def arm_harness(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Statically linked, so qemu needs no ARM libraries at run time.
    return _build(CROSS_CC, build_flags("aarch64", GRAVITON2_FEATURES), tmp_path_factory.mktemp("arm"), ("-static",))


@needs_arm_tools
def test_arm_dotprod_kernels_match_double_math_under_qemu(arm_harness):
    # A Graviton 2's core (a Raspberry Pi 5's, cortex-a76, runs the same instructions: qemu -cpu cortex-a76).
    done = _run([QEMU, "-cpu", "neoverse-n1", str(arm_harness)])
    print(done.stdout)
    _all_passed(done)
    assert "kernels built for 128-bit vectors (neon-dotprod)" in done.stdout


@needs_arm_tools
def test_arm_build_needs_the_dot_product_instructions(arm_harness, tmp_path):
    # A core without them (a Raspberry Pi 4's Cortex-A72) cannot run the dotprod build at all...
    done = _run([QEMU, "-cpu", "cortex-a72", str(arm_harness)])
    assert done.returncode != 0 and "0 failed" not in done.stdout
    # ...so the loader never builds it there: it compiles for the CPU (which gives the stubs) and refuses.
    assert arch_flags("aarch64", PI4_FEATURES) == ("-march=native",)
    pi4 = tuple("-march=armv8-a+crc" if flag == "-march=native" else flag for flag in build_flags("aarch64", PI4_FEATURES))
    stubs = _build(CROSS_CC, pi4, tmp_path, ("-static",))
    done = _run([QEMU, "-cpu", "cortex-a72", str(stubs)])
    assert done.returncode == 2 and "stubs" in done.stdout


def test_the_loader_builds_for_dot_products_where_the_cpu_has_them(monkeypatch):
    assert arch_flags("aarch64", GRAVITON2_FEATURES) == ("-march=armv8.2-a+dotprod",)
    assert arch_flags("x86_64", "flags : fpu avx2 avx512f avx512_vnni") == ("-march=native",)
    assert "-march=armv8.2-a+dotprod" in build_flags("aarch64", GRAVITON2_FEATURES)

    class Stubs:  # a library built for an ARM CPU without dot products
        @staticmethod
        def riffd_int8_supported() -> int:
            return 0

    monkeypatch.setattr(daemon.native, "library", lambda: Stubs())
    monkeypatch.setattr(daemon.native.os, "uname", lambda: os.uname_result(("Linux", "pi", "6.6", "#1", "aarch64")))
    with pytest.raises(NativeUnavailable, match="asimddp"):
        daemon.native.kernels()


@pytest.mark.parametrize("branch", runnable_here() if os.uname().machine == "x86_64" else [], ids=lambda b: b.isa)
def test_every_x86_branch_this_cpu_runs_matches_double_math(x86_harness, branch):
    """Each simd.h branch (vector width, product instruction or its stand-in) through every check."""
    done = _run([str(x86_harness(branch))])
    print(done.stdout)
    _all_passed(done)
    assert f"-bit vectors ({branch.isa})" in done.stdout.splitlines()[0]


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="builds the harness for this x86 CPU")
def test_the_decoder_step_reference_holds_at_seeds_that_put_activations_on_rounding_ties(x86_harness):
    """The harness built for this machine's branch, with inputs from other seeds. At these, on the
    Zen 4 AVX-512 build, 8-bit activations of the decoder step sat on rounding ties, where the
    kernel's float32 value and the reference's double rounded to neighbouring codes, and the step's
    logits were 3 to 11 times their bound (int4, int8a8) until the reference took the kernel's code at
    ties; every check passes, and each decoder step's codes differ from the reference's at ties only."""
    harness = x86_harness(NATIVE)
    for seed in SEEDS_ON_TIES:
        done = _run([str(harness), str(seed)])
        if done.returncode == 2:
            pytest.skip("the kernels build as stubs on this CPU")
        assert done.returncode == 0, f"seed {seed}:\n" + done.stdout[-4000:] + done.stderr[-2000:]
        assert done.stdout.count("activation codes, the reference's but") == 4
