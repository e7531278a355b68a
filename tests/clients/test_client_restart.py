"""Clients reading a job while the daemon is killed (SIGKILL) and started again on the same folder
(issue 18): a saved job is resumed and its client hears it from its first chunk again.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq
from daemon_harness import free_port

from daemon.child import DaemonChild
from protocol import wire
from protocol.messages import Accepted, Chunk, Done, Error, Generate, Started

TAKE_S = 30.0  # long enough to be killed in the middle of on a busy 2-core machine (~2 s of work alone)


class KillableDaemon:
    """`python -m daemon` with the debug preset, on ports and a folder kept across kills."""

    def __init__(self, out: Path, cache: Path) -> None:
        ports = [free_port() for _ in range(3)]
        # float32: the same seed gives the same audio however the engine is chosen on this machine.
        self.args = ["--model", "debug/musicgen", "--device", "cpu", "--engine", "float32", "--out", str(out),
                     "--cache-dir", str(cache), "--osc-port", str(ports[0]), "--zmq-port", str(ports[1]),
                     "--pub-port", str(ports[2]), "--log-level", "INFO"]
        self.child = DaemonChild(self.args)

    @property
    def zmq(self) -> str:
        return self.child.zmq

    def wait_log(self, text: str) -> None:
        deadline = time.monotonic() + 60
        while not any(text in line for line in self.child.log):
            assert time.monotonic() < deadline and self.child.process.poll() is None, "".join(self.child.log)
            time.sleep(0.01)

    def kill_once_streaming(self, job: str) -> None:
        """SIGKILL the daemon a moment after `job` sent its first chunk (the client has some audio)."""
        self.wait_log(f"job {job}: first chunk")
        time.sleep(0.3)
        assert self.child.process.poll() is None, f"job {job} ended before the kill"
        os.kill(self.child.process.pid, signal.SIGKILL)
        self.child.process.wait(10)

    def restart(self) -> None:
        self.child = DaemonChild(self.args)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory, riffd_cache: Path) -> Iterator[KillableDaemon]:
    killable = KillableDaemon(tmp_path_factory.mktemp("restart") / "out", riffd_cache)
    yield killable
    killable.child.kill()


def test_a_client_that_reconnects_late_still_hears_the_resumed_job_from_its_first_chunk(
        daemon: KillableDaemon) -> None:
    """The daemon waits for a resumed job's requester (up to 2 s) before the job starts again: here a
    bare DEALER that retries its connection only every 0.8 s (libzmq's default is 0.1 s)."""
    context = zmq.Context()
    dealer = context.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.setsockopt(zmq.IDENTITY, b"late-client")
    dealer.setsockopt(zmq.RECONNECT_IVL, 800)
    dealer.connect(daemon.zmq)
    try:
        dealer.send_multipart(wire.encode(Generate(prompt="restart", duration_s=TAKE_S, seed=44, save=True,
                                                   job="late", id="r-late")))
        daemon.kill_once_streaming("late")
        daemon.restart()
        assert any("waiting up to 2 s for the clients of 1 resumed job(s)" in line for line in daemon.child.log)
        events = []
        while not events or not isinstance(events[-1], (Done, Error)):
            assert dealer.poll(60_000), [event.TYPE for event in events]
            events.append(wire.decode_event(dealer.recv_multipart()))
    finally:
        dealer.close()
        context.term()
    # What came after the restart: accepted, started, and every chunk from the first.
    restarted = max(at for at, event in enumerate(events) if isinstance(event, Accepted))
    after = events[restarted:]
    assert isinstance(after[1], Started) and isinstance(after[-1], Done), [event.TYPE for event in after]
    chunks = [event for event in after if isinstance(event, Chunk)]
    assert [chunk.index for chunk in chunks] == list(range(len(chunks)))
    assert sum(chunk.frames for chunk in chunks) == after[-1].frames
