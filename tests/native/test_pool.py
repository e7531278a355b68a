"""pool.c's parallel regions stay exact when threads stall at the worst moments (`pool_stress.c`).

A worker that read the pool's ticket and then lost its CPU could claim a chunk of the caller's next
region while that region was being written: the chunk ran twice, and its extra count let the caller
return while another chunk still ran (once, in a benchmark, a batched job's codes differed from
alone). The harness stalls threads at those points for random short whiles; before the fix it
found the fault within 0.6 s on average (8 runs, 37 to 12 000 regions), so a few seconds of it
fail that code almost surely."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

import daemon.native
from daemon.config import environment_c_compiler

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def stress(tmp_path_factory: pytest.TempPathFactory) -> Path:
    compiler = environment_c_compiler()
    if shutil.which(compiler) is None:
        pytest.skip(f"no C compiler ({compiler!r})")
    program = tmp_path_factory.mktemp("pool") / "pool_stress"
    command = [compiler, "-O2", "-pthread", "-std=gnu11", "-DRIFFD_POOL_TEST", f"-I{daemon.native.SOURCE_DIR}",
               str(daemon.native.SOURCE_DIR / "pool.c"), str(HERE / "pool_stress.c"), "-o", str(program)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return program


@pytest.mark.parametrize(("seconds", "threads"), [(3.0, 2), (1.5, 3)])
def test_every_chunk_runs_once_inside_its_call_when_threads_stall(stress, seconds, threads):
    done = subprocess.run([str(stress), str(seconds), str(threads)], capture_output=True, text=True, timeout=120)
    summary = done.stdout.strip().splitlines()[-1]
    assert done.returncode == 0, summary + "\n" + done.stderr[-2000:]
    regions = int(summary.split()[1])
    assert summary.endswith(" 0 faults") and regions >= 1000, summary
