"""The daemon as a process killed mid-job: no incomplete file under a final name, and a restart serves."""

from __future__ import annotations

import signal
from pathlib import Path

import soundfile as sf
from daemon_harness import OscPeer

from clients import Client
from daemon.child import DaemonChild
from protocol.messages import Done



def serve(out: Path, cache: Path) -> DaemonChild:
    """`python -m daemon` with the debug preset on free ports."""
    return DaemonChild(["--model", "debug/musicgen", "--device", "cpu", "--out", str(out), "--cache-dir", str(cache),
                        "--osc-port", "0", "--zmq-port", "0"])


def test_sigkill_mid_job_leaves_only_whole_files_and_a_restart_serves(tmp_path: Path, riffd_cache: Path) -> None:
    out = tmp_path / "out"
    daemon = serve(out, riffd_cache)
    peer = OscPeer(daemon.osc_port)
    try:
        peer.send("/riffd/generate", "x", 60.0, "job", "killed", "save", 1)
        chunks = 0
        while chunks < 3:
            address, args = peer.receive()
            chunks += address == "/riffd/chunk"
        assert daemon.stop(signal.SIGKILL, timeout_s=10) == -signal.SIGKILL
    finally:
        peer.close()
        daemon.kill()
    assert not (out / "killed.wav").exists()  # the saved file is only ever written whole
    # (The journal of the killed job, which the restart resumes, is under .riffd-state: not audio.)
    finals = [path for path in out.rglob("*") if path.is_file() and not path.name.endswith(".part")
              and ".riffd-state" not in path.parts]
    assert len(finals) >= 3
    for path in finals:  # every file under a final name is a whole WAV
        info = sf.info(str(path))
        assert info.frames > 0 and len(sf.read(str(path))[0]) == info.frames
    # What a kill in the middle of a write leaves: a hidden temporary file. A restart removes it.
    stale = out / "killed" / ".chunk-00099.wav.abcd1234.part"
    stale.write_bytes(b"RIFF half a file")
    again = serve(out, riffd_cache)
    try:
        assert not stale.exists()
        assert any("resumed job killed" in line for line in again.log)  # the saved take goes on (issue 18)
        with Client(again.zmq, timeout_s=30) as client:
            assert isinstance(list(client.generate("x", duration_s=0.5))[-1], Done)
        assert again.stop() == 0
    finally:
        again.kill()
