"""riffd's prefill attention (`daemon/native/prefill_attention.c`) through `prefill_attention_check.c`
against double-precision C, built for a 64-bit ARM core with dot products and run under qemu-user
(correctness only; every x86 branch runs tests/musicgen/test_prefill_attention.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import daemon.native
from daemon.native import build_flags
from daemon.native.compile import compile_objects
from tests.native.test_kernel_harness import CROSS_CC, GRAVITON2_FEATURES, QEMU, needs_arm_tools

HERE = Path(__file__).resolve().parent


def _build(compiler: str, kernel_flags: tuple[str, ...], folder: Path, link: tuple[str, ...] = ()) -> Path:
    """The library's sources with `kernel_flags` (as daemon.native compiles them) and the check, in one program."""
    compile_flags = [flag for flag in kernel_flags if flag not in ("-shared", "-fPIC")]
    sources = [HERE / "prefill_attention_check.c", *sorted(daemon.native.SOURCE_DIR.glob("*.c"))]
    objects = compile_objects(compiler, [*compile_flags, f"-I{daemon.native.SOURCE_DIR}"], sources, folder,
                              timeout_s=240)
    command = [compiler, *compile_flags, *link, *map(str, objects), "-lm", "-o", str(folder / "check")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, f"{' '.join(command)}\n{done.stderr[-3000:]}"
    return folder / "check"


def _assert_passes(command: list[str], isa: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert f"kernels built for {isa}" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "prefill attention: 56 checked, 0 failed"


@needs_arm_tools
def test_prefill_attention_matches_double_math_on_arm_under_qemu(tmp_path):
    assert QEMU is not None
    program = _build(CROSS_CC, build_flags("aarch64", GRAVITON2_FEATURES), tmp_path, ("-static",))
    _assert_passes([QEMU, "-cpu", "neoverse-n1", str(program)], "neon-dotprod")
