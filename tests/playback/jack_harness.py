"""A real JACK server (dummy driver) and jack_capture recordings of its playback ports, for tests.

The server runs without realtime scheduling and without a sound card, under a name of its own
so that parallel test runs on one machine do not meet. Every wait has a timeout.
"""

from __future__ import annotations

import ctypes
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

JACK_TOOLS = ("jackd", "jack_wait", "jack_lsp", "jack_capture")


def missing_tools() -> list[str]:
    return [tool for tool in JACK_TOOLS if shutil.which(tool) is None]


def _env(server: str) -> dict[str, str]:
    env = dict(os.environ)
    env["JACK_DEFAULT_SERVER"] = server
    env["JACK_NO_AUDIO_RESERVATION"] = "1"  # no D-Bus device reservation on a headless box
    return env


def _die_with_parent() -> None:
    """In the child before exec (Linux): SIGTERM it when the test process dies, even by a crash."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _stop(proc: subprocess.Popen, sig: int, timeout_s: float) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@dataclass
class JackServer:
    """`jackd --no-realtime --sync -d dummy` at `sample_rate`, `period_frames` per cycle."""

    sample_rate: int = 48000
    period_frames: int = 1024
    # Synchronous mode: a cycle waits (up to this long) for late clients instead of dropping
    # their audio. A dummy driver has no hardware deadline to keep, so on a loaded machine the
    # capture stays exactly what the clients produced, and the tests measure riffd, not the OS.
    client_timeout_ms: int = 2000
    name: str = field(default_factory=lambda: f"riffd-test-{os.getpid()}-{secrets.token_hex(3)}")
    proc: subprocess.Popen | None = None
    log_path: Path | None = None

    @property
    def env(self) -> dict[str, str]:
        """Environment for processes that should talk to this server."""
        return _env(self.name)

    def start(self, timeout_s: float = 15.0) -> None:
        fd, log_name = tempfile.mkstemp(prefix=f"{self.name}.", suffix=".log")
        self.log_path = Path(log_name)
        with os.fdopen(fd, "wb") as log:
            self.proc = subprocess.Popen(
                ["jackd", "--no-realtime", "--sync", "-t", str(self.client_timeout_ms), "-n", self.name, "-d", "dummy",
                 "-r", str(self.sample_rate), "-p", str(self.period_frames)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                preexec_fn=_die_with_parent,
            )
        waited = subprocess.run(
            ["jack_wait", "-s", self.name, "-w", "-t", str(int(timeout_s))],
            env=self.env, capture_output=True, text=True, timeout=timeout_s + 5,
        )
        if waited.returncode != 0 or self.proc.poll() is not None or "system:playback_1" not in self.ports():
            log_text = self.log_path.read_text(errors="replace")
            self.stop()
            raise RuntimeError(f"jackd {self.name} did not start: {waited.stdout}{waited.stderr}\n{log_text}")

    def ports(self, *, connections: bool = False, tries: int = 3, timeout_s: float = 5.0) -> str:
        """`jack_lsp`'s listing. A query can hang while the server is busy with another client's
        arrival or departure (seen once in CI: jack_lsp silent for 10 s as jack_capture started,
        while the server drops a client that stops answering after 2 s, `client_timeout_ms`): a hung
        query is killed and asked again, and only `tries` hung queries in a row fail the test."""
        args = ["jack_lsp", "-s", self.name] + (["-c"] if connections else [])
        for _ in range(tries - 1):
            try:
                return subprocess.run(args, env=self.env, capture_output=True, text=True, timeout=timeout_s).stdout
            except subprocess.TimeoutExpired:
                continue
        return subprocess.run(args, env=self.env, capture_output=True, text=True, timeout=timeout_s).stdout

    def connections_of(self, port: str) -> list[str]:
        """The ports connected to `port`, from `jack_lsp -c`."""
        lines = self.ports(connections=True).splitlines()
        found: list[str] = []
        for i, line in enumerate(lines):
            if line == port:
                for follower in lines[i + 1 :]:
                    if not follower.startswith(" "):
                        break
                    found.append(follower.strip())
        return found

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc, signal.SIGTERM, 10)
            self.proc = None
        if self.log_path is not None:
            self.log_path.unlink(missing_ok=True)


class JackCapture:
    """`jack_capture` recording `system:playback_*` (what the speakers get) as 32-bit float WAV."""

    def __init__(self, server: JackServer, path: Path, channels: int = 2) -> None:
        self.server = server
        self.path = path
        self.channels = channels
        self.proc: subprocess.Popen | None = None

    def start(self, timeout_s: float = 10.0) -> JackCapture:
        ports = [arg for ch in range(1, self.channels + 1) for arg in ("-p", f"system:playback_{ch}")]
        self.proc = subprocess.Popen(
            ["jack_capture", "--daemon", "-b", "FLOAT", "-c", str(self.channels), *ports, str(self.path)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=self.server.env,
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + timeout_s
        while f"jack_capture:input{self.channels}" not in self.server.ports():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop_process()
                raise RuntimeError(f"jack_capture did not start: {self._stderr()}")
            time.sleep(0.05)
        return self

    def wait_following(self, source_prefix: str, timeout_s: float = 10.0) -> None:
        """Wait until jack_capture mirrors the connections of a client (e.g. 'PortAudio') to the speakers."""
        deadline = time.monotonic() + timeout_s
        while not any(p.startswith(source_prefix) for p in self.server.connections_of("jack_capture:input1")):
            if time.monotonic() > deadline:
                raise TimeoutError(f"jack_capture never followed {source_prefix}: {self.server.ports(connections=True)}")
            time.sleep(0.05)

    def stop(self, timeout_s: float = 10.0) -> np.ndarray:
        """End the recording; the captured audio as float32 `[channels, frames]`."""
        self.stop_process(timeout_s)
        data, rate = sf.read(str(self.path), dtype="float32", always_2d=True)
        assert rate == self.server.sample_rate, f"capture at {rate} Hz, server at {self.server.sample_rate} Hz"
        return np.ascontiguousarray(data.T)

    def stop_process(self, timeout_s: float = 10.0) -> None:
        if self.proc is not None:
            _stop(self.proc, signal.SIGINT, timeout_s)  # SIGINT: jack_capture closes the file properly

    def _stderr(self) -> str:
        if self.proc is None or self.proc.stderr is None or self.proc.poll() is None:
            return ""
        return self.proc.stderr.read().decode(errors="replace")


def late_start(log_lines: Iterable[str], job: str) -> tuple[int, float]:
    """What the daemon logged of `job` launched in time starting late: the device frames of its
    opening its voice skipped, and how late the callback for its launch came, in ms; (0, 0.0)
    when it started on its beat.

    On an overloaded machine the dummy driver (which keeps time with sleeps) can stall the
    daemon's callbacks past a launch; the voice then starts where the take is by the beat's clock,
    as it must on a sound card that went on playing. A capture then lacks the take's opening: a
    test compares what follows it, and checks the skip is no more than the callback's delay (a
    larger one would be a launch riffd planned too late).
    """
    pattern = re.compile(rf"job {re.escape(job)} started .* callback came ([0-9.]+) ms late\): its first (\d+) frames")
    found = [m for line in log_lines if (m := pattern.search(line))]
    return (int(found[0].group(2)), float(found[0].group(1))) if found else (0, 0.0)
