"""The daemon as a process killed mid-job: no incomplete file under a final name, and a restart serves."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import soundfile as sf
from daemon_harness import OscPeer

from clients import Client
from protocol.messages import Done

REPO = Path(__file__).resolve().parents[2]


class Served:
    """`python -m daemon` on free ports; its OSC port and ZeroMQ endpoint read from its log."""

    def __init__(self, out: Path, cache: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "daemon", "--model", "debug/musicgen", "--device", "cpu", "--out", str(out),
             "--cache-dir", str(cache), "--osc-port", "0", "--zmq-port", "0"],
            cwd=REPO, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.log: list[str] = []
        self.osc_port, self.zmq = 0, ""
        ready = threading.Event()

        def read() -> None:
            assert self.process.stderr is not None
            for line in self.process.stderr:
                self.log.append(line)
                found = re.search(r"OSC udp\+tcp 127\.0\.0\.1:(\d+), ZeroMQ requests (tcp://\S+),", line)
                if found:
                    self.osc_port, self.zmq = int(found.group(1)), found.group(2)
                if " ready: " in line:
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(120):
            self.process.kill()
            raise AssertionError("daemon never said ready:\n" + "".join(self.log))


def test_sigkill_mid_job_leaves_only_whole_files_and_a_restart_serves(tmp_path: Path, riffd_cache: Path) -> None:
    out = tmp_path / "out"
    daemon = Served(out, riffd_cache)
    peer = OscPeer(daemon.osc_port)
    try:
        peer.send("/riffd/generate", "x", 60.0, "job", "killed", "save", 1)
        chunks = 0
        while chunks < 3:
            address, args = peer.receive()
            chunks += address == "/riffd/chunk"
        daemon.process.send_signal(signal.SIGKILL)
        assert daemon.process.wait(10) == -signal.SIGKILL
    finally:
        peer.close()
        if daemon.process.poll() is None:
            daemon.process.kill()
    assert not (out / "killed.wav").exists()  # the saved file is only ever written whole
    finals = [path for path in out.rglob("*") if path.is_file() and not path.name.endswith(".part")]
    assert len(finals) >= 3
    for path in finals:  # every file under a final name is a whole WAV
        info = sf.info(str(path))
        assert info.frames > 0 and len(sf.read(str(path))[0]) == info.frames
    # What a kill in the middle of a write leaves: a hidden temporary file. A restart removes it.
    stale = out / "killed" / ".chunk-00099.wav.abcd1234.part"
    stale.write_bytes(b"RIFF half a file")
    again = Served(out, riffd_cache)
    try:
        assert not stale.exists()
        with Client(again.zmq, timeout_s=30) as client:
            assert isinstance(list(client.generate("x", duration_s=0.5))[-1], Done)
        again.process.send_signal(signal.SIGTERM)
        assert again.process.wait(30) == 0
    finally:
        if again.process.poll() is None:
            again.process.kill()
