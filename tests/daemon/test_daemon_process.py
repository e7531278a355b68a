"""`python -m daemon` as its own process: ready log, config file, SIGTERM and SIGINT mid-job."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from clients import Client
from protocol.messages import Error, Progress

REPO = Path(__file__).resolve().parents[2]


class DaemonProcess:
    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "daemon", *args], cwd=REPO, stderr=subprocess.PIPE,
                                        text=True, env={**os.environ, **(env or {})})
        self.log: list[str] = []
        self._ready = threading.Event()
        self.zmq = ""
        threading.Thread(target=self._read, daemon=True).start()
        if not self._ready.wait(120):
            self.process.kill()
            raise AssertionError("daemon never said ready:\n" + "".join(self.log))

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line)
            found = re.search(r"ZeroMQ requests (tcp://\S+),", line)
            if found:
                self.zmq = found.group(1)
            if " ready: " in line:
                self._ready.set()

    def stop(self, signum: int) -> int:
        self.process.send_signal(signum)
        return self.process.wait(30)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_mid_job_ends_the_job_with_an_error_and_leaves_no_partial_file(
        tmp_path: Path, riffd_cache: Path, signum: int) -> None:
    out = tmp_path / "out"
    config = tmp_path / "riffd.toml"
    # Settings from a config file; flags still override it (osc port).
    config.write_text(f'model = ["debug/musicgen"]\ndevice = "cpu"\nout = "{out}"\nosc-port = 1\n'
                      f'zmq_port = 0\ncache_dir = "{riffd_cache}"\n')
    daemon = DaemonProcess(["--config", str(config), "--osc-port", "0"])
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
        if daemon.process.poll() is None:
            daemon.process.kill()
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
    assert config_from_args(parser.parse_args([])).engine == "float32"
    for bad in ("float64", "int8+turbo"):
        with pytest.raises(InvalidArgument):
            config_from_args(parser.parse_args(["--engine", bad]))
