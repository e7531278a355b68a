"""A daemon started as a child process (`python -m daemon ARGS`), ready once its log says so.

For tests and benchmarks that need a real process: signals, restarts, a sound card opened by
another process. Its endpoints are read from the "listening:" line it logs.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

_LISTENING = re.compile(r"listening: OSC udp\+tcp \S+:(\d+), ZeroMQ requests (tcp://\S+), events (tcp://\S+)")
_REPO = Path(__file__).resolve().parents[1]


class DaemonChild:
    """The child process; `log` collects its stderr lines as they come."""

    def __init__(self, args: Sequence[str], *, env: Mapping[str, str] | None = None, ready_timeout_s: float = 180.0,
                 prefix: Sequence[str] = ()) -> None:
        # `prefix`: a command the daemon runs under (`ip netns exec NAME` for the Link tests).
        self.process = subprocess.Popen([*prefix, sys.executable, "-m", "daemon", *args], cwd=_REPO,
                                        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True)
        self.log: list[str] = []
        self.osc_port, self.zmq, self.pub = 0, "", ""
        self._ready = threading.Event()
        threading.Thread(target=self._read, name="daemon-child-log", daemon=True).start()
        # Wait for "ready", but not past the child's death or the deadline.
        waited = 0.0
        while not self._ready.wait(0.2) and self.process.poll() is None and waited < ready_timeout_s:
            waited += 0.2
        if not self._ready.is_set():
            self.kill()
            raise RuntimeError("the daemon never said ready:\n" + "".join(self.log))

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line)
            found = _LISTENING.search(line)
            if found:
                self.osc_port, self.zmq, self.pub = int(found.group(1)), found.group(2), found.group(3)
            if " ready: " in line:
                self._ready.set()

    def stop(self, signum: int = signal.SIGTERM, timeout_s: float = 30.0) -> int:
        """Send `signum` and return the exit status (killing the child if it does not end in time)."""
        self.process.send_signal(signum)
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
