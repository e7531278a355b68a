"""A --ray front as a process (`python -m daemon --ray ...`) where the cluster is not there, or goes:
an address nobody answers fails in seconds with one line, a malformed address or `auto` with no
cluster are one line in riffd's terms, and a front whose cluster died stops cleanly on SIGTERM.

Ray finds clusters for `auto` by their processes and under its temp folder, and ends a driver whose
node died at once where the driver's parent is PID 1: tests that need either run in a PID namespace
of their own (`unshare -p`, as root) where they can.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from daemon_harness import free_port

pytestmark = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="the riffd[ray] extra is not installed")

REPO = Path(__file__).resolve().parents[2]
#: A command's prefix that runs it as PID 1 of a PID namespace of its own (None: none can be made here).
PID_NAMESPACE = (["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"]
                 if os.geteuid() == 0 and shutil.which("unshare") else None)


def _front_args(out: Path, *args: str) -> list[str]:
    return ["--out", str(out), "--device", "cpu", "--no-web", "--osc-port", "0", "--zmq-port", "0", "--pub-port", "0",
            *args]


def _run_front(out: Path, *args: str, prefix: list[str] | None = None, env: dict[str, str] | None = None,
               timeout_s: float = 120.0) -> tuple[int, list[str], float]:
    """A front that should not start: its exit status, its stderr's lines and how long it took."""
    started = time.monotonic()
    done = subprocess.run([*(prefix or []), sys.executable, "-m", "daemon", *_front_args(out, *args)], cwd=REPO,
                          env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout_s)
    return done.returncode, done.stderr.splitlines(), time.monotonic() - started


def test_a_front_pointed_at_an_address_nobody_answers_fails_within_its_connect_timeout(tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"
    status, lines, took_s = _run_front(tmp_path, "--ray", address, "--ray-workers", "1", "--ray-connect-timeout-s", "3")
    assert status == 2, lines
    assert lines[-1] == (f"riffd: error: no Ray cluster answered at {address} within 3 s (start one with "
                         "`ray start --head`, or check --ray) [model_unavailable]"), lines
    assert not any("Traceback" in line for line in lines), lines
    assert took_s < 60, took_s  # the interpreter's and Ray's imports, then 3 s: not Ray's minutes of retries


def test_a_malformed_ray_address_is_one_line() -> None:
    status, lines, _ = _run_front(Path("unused"), "--ray", "nonsense")
    assert status == 2
    assert lines == ["riffd: error: --ray takes HOST:PORT (a Ray head's address), 'auto' or nothing (a local Ray "
                     "instance), not 'nonsense' [invalid_argument]"], lines


@pytest.mark.skipif(PID_NAMESPACE is None, reason="needs a PID namespace (root and unshare) to hide other clusters")
def test_ray_auto_with_no_cluster_on_the_machine_says_so_in_riffds_terms(tmp_path: Path) -> None:
    # No cluster to find: no Ray process in the namespace, no address file under an empty temp folder.
    env = {"RAY_TMPDIR": str(tmp_path / "ray-tmp"), "RAY_ADDRESS": ""}
    status, lines, _ = _run_front(tmp_path / "out", "--ray", "auto", prefix=PID_NAMESPACE, env=env)
    assert status == 2, lines
    assert lines[-1] == ("riffd: error: --ray auto found no Ray cluster on this machine (start one with "
                         "`ray start --head`, or give its address: --ray HOST:PORT) [model_unavailable]"), lines
    assert not any("RAY_ADDRESS" in line or "--address" in line for line in lines), lines


def test_a_front_whose_cluster_died_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    """Ray's crash handler on SIGTERM aborted such a front 3 s into its stop (exit 134), and Ray's shutdown,
    asking the dead node to let it go, ended it with 1 where its parent is PID 1; both before "stopped"."""
    script = Path(__file__).with_name("lost_cluster.py")
    done = subprocess.run([*(PID_NAMESPACE or []), sys.executable, str(script), str(tmp_path)], cwd=REPO,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.splitlines()[-1])
    log = result["log"]
    assert result["parent_is_pid_1"] == (PID_NAMESPACE is not None)
    assert result["status"] == 0, log[-3000:]
    assert "daemon.server.app: stopped" in log, log[-3000:]
    assert "SIGTERM received" not in log  # Ray's crash report for a signal that asked for a stop
