"""`python -m bench.isa CLASS -- COMMAND`: a command run as an emulated CPU class would run it (bench/isa.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench.isa import EMULATIONS, MARKER

ROOT = Path(__file__).resolve().parents[2]
SHOW = "import json, os; print(json.dumps(dict(os.environ)))"


def _isa(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items()
           if name not in EMULATIONS["avx2"] and name not in (MARKER, "TORCHINDUCTOR_CACHE_DIR")}
    env["TMPDIR"] = str(tmp_path)
    return subprocess.run([sys.executable, "-m", "bench.isa", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


def test_the_command_runs_with_the_class_variables_and_its_own_compile_cache(tmp_path: Path) -> None:
    for emulate, variables in EMULATIONS.items():
        done = _isa(tmp_path, emulate, "--", sys.executable, "-c", SHOW)
        assert done.returncode == 0, done.stderr
        printed, seen = done.stdout.splitlines()[-2], json.loads(done.stdout.splitlines()[-1])
        for name, value in variables.items():
            assert seen[name] == value
            assert printed.count(f"{name}=") == 1
        assert seen[MARKER] == emulate  # a benchmark given --emulate there does not re-execute itself
        # torch.compile's cache of this class, not the one of the process that started it (inductor_cache.py)
        folder = Path(seen["TORCHINDUCTOR_CACHE_DIR"])
        assert folder.parent.parent == tmp_path and folder.name == f"riffd-capability-{variables['ATEN_CPU_CAPABILITY']}"


def test_a_missing_command_or_an_unknown_class_is_refused(tmp_path: Path) -> None:
    missing = _isa(tmp_path, "avx2")
    assert missing.returncode == 2 and "give a command to run" in missing.stderr
    unknown = _isa(tmp_path, "avx3", "--", "true")
    assert unknown.returncode == 2 and "invalid choice: 'avx3'" in unknown.stderr
