"""`python -m daemon` as its own process: ready log, config file, SIGTERM and SIGINT mid-job."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clients import Client
from daemon.child import DaemonChild
from protocol.messages import Error, Progress

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_mid_job_ends_the_job_with_an_error_and_leaves_no_partial_file(
        tmp_path: Path, riffd_cache: Path, signum: int) -> None:
    out = tmp_path / "out"
    config = tmp_path / "riffd.toml"
    # Settings from a config file; flags still override it (osc port).
    config.write_text(f'model = ["debug/musicgen"]\ndevice = "cpu"\nout = "{out}"\nosc-port = 1\n'
                      f'zmq_port = 0\ncache_dir = "{riffd_cache}"\n')
    daemon = DaemonChild(["--config", str(config), "--osc-port", "0"])
    try:
        assert any("listening: OSC udp+tcp 127.0.0.1:" in line for line in daemon.log)
        with Client(daemon.zmq, timeout_s=30) as client:
            stream = client.generate("long", duration_s=120.0, job="interrupted", save=True)
            for event in stream:
                if isinstance(event, Progress):
                    break
            started = time.monotonic()
            assert daemon.stop(signum) == 0
            rest = list(stream)
        assert time.monotonic() - started < 10
        assert isinstance(rest[-1], Error) and rest[-1].code == "shutting_down", rest[-1:]
    finally:
        daemon.kill()
    assert not (out / "interrupted.wav").exists()
    assert not list(out.rglob("*.part"))
    assert any("stopped" in line for line in daemon.log)


def test_bad_flags_and_bad_config_exit_with_a_message(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("max_queue = 0\n")
    result = subprocess.run([sys.executable, "-m", "daemon", "--config", str(bad)], cwd=REPO, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2 and "max_queue must be at least 1" in result.stderr
    bad.write_text("colour = 'red'\n")
    result = subprocess.run([sys.executable, "-m", "daemon", "--config", str(bad)], cwd=REPO, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2 and "unknown setting 'colour'" in result.stderr


def test_engine_mode_is_a_setting_checked_at_start():
    """`--engine` reaches the config; a mode that does not exist is refused before anything starts."""
    import argparse

    from daemon.config import add_arguments, config_from_args
    from protocol.errors import InvalidArgument

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert config_from_args(parser.parse_args(["--engine", "bfloat16+compile"])).engine == "bfloat16+compile"
    assert config_from_args(parser.parse_args([])).engine == "auto"
    assert config_from_args(parser.parse_args(["--engine", "float32"])).engine == "float32"
    for bad in ("float64", "int8+turbo"):
        with pytest.raises(InvalidArgument):
            config_from_args(parser.parse_args(["--engine", bad]))
