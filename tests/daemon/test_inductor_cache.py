"""torch.compile's cache kept a folder per ATEN_CPU_CAPABILITY (daemon/inductor_cache.py): code one
capability cached is never built for another."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from daemon.inductor_cache import CACHE_VARIABLE, CAPABILITY_VARIABLE, capability_folder, separate_by_capability

# Compiled, then compared with the eager result: the cache folder it used, and the largest difference.
COMPILED = textwrap.dedent("""
    import os
    import daemon  # before torch, as riffd's entry points
    import torch

    def f(x, w):
        y = torch.softmax(x @ w, dim=-1)
        return torch.nn.functional.gelu(y * 3.0 + x[:, :y.shape[1]]).sum(dim=0)

    generator = torch.Generator().manual_seed(0)
    x, w = torch.randn(7, 203, generator=generator), torch.randn(203, 101, generator=generator)
    got = torch.compile(f, dynamic=False)(x, w)
    print(os.environ["TORCHINDUCTOR_CACHE_DIR"])
    print(float((got - f(x, w)).abs().max()))
""")


def test_each_capability_has_its_own_folder_and_a_folder_someone_set_stays() -> None:
    unset: dict[str, str] = {}
    assert separate_by_capability(unset) == unset[CACHE_VARIABLE] == capability_folder(None)
    avx2 = {CAPABILITY_VARIABLE: "AVX2"}
    assert separate_by_capability(avx2) == capability_folder("avx2") != capability_folder(None)
    assert capability_folder("default") != capability_folder("avx512") != capability_folder("avx2")
    assert Path(capability_folder("../x")).parent == Path(capability_folder(None)).parent  # no way out of it
    # A child inherits its parent's folder: with another capability it takes its own.
    child = {CACHE_VARIABLE: unset[CACHE_VARIABLE], CAPABILITY_VARIABLE: "default"}
    assert separate_by_capability(child) == capability_folder("default") == child[CACHE_VARIABLE]
    theirs = {CACHE_VARIABLE: "/srv/kernels", CAPABILITY_VARIABLE: "avx2"}
    assert separate_by_capability(theirs) is None and theirs[CACHE_VARIABLE] == "/srv/kernels"


def _start_compiling(tmp_path: Path, capability: str | None) -> subprocess.Popen[str]:
    env = {key: value for key, value in os.environ.items() if key not in (CACHE_VARIABLE, CAPABILITY_VARIABLE)}
    env["TMPDIR"] = str(tmp_path)  # PyTorch's default cache folder, and riffd's under it, in the test's own
    if capability is not None:
        env[CAPABILITY_VARIABLE] = capability
    return subprocess.Popen([sys.executable, "-c", COMPILED], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _compiled(run: subprocess.Popen[str]) -> tuple[str, float]:
    stdout, stderr = run.communicate(timeout=300)
    assert run.returncode == 0, stderr[-3000:]
    folder, difference = stdout.split("\n")[-3:-1]
    return folder, float(difference)


@pytest.mark.skipif(sys.platform != "linux" or os.uname().machine != "x86_64",
                    reason="the capabilities named here are x86's")
def test_code_compiled_under_one_capability_is_not_replayed_under_another(tmp_path: Path) -> None:
    """Without the folders, the second run took the first's cached code: under `default` it no longer
    compiled, under avx2 on an AVX-512 CPU it returned values off by 1e33."""
    # The three cold compiles run at once (each is ~20 s of mostly one-threaded C++ compiling): with the
    # folders none of them can see another's code whatever the order; without them whichever finished
    # first would be replayed by the replay below, and under another capability by the two others when
    # they started late enough, which the replay's check catches either way.
    capabilities = (None, "default", "avx2")
    results = [_compiled(run) for run in [_start_compiling(tmp_path, capability) for capability in capabilities]]
    results.append(_compiled(_start_compiling(tmp_path, None)))  # the first's cache, replayed
    folders = []
    for capability, (folder, difference) in zip((*capabilities, None), results):
        assert difference < 1e-4, (capability, difference)
        folders.append(Path(folder))
    assert len(set(folders)) == 3 and folders[0] == folders[-1]
    for folder in folders:
        assert folder.parent.parent == tmp_path and folder.parent.name.startswith("torchinductor_")
        assert any(folder.iterdir())
