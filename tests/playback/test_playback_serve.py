"""`python -m daemon --play` (what `riffd serve --play` runs) as its own process, on a JACK server."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from clients import Client
from daemon.audio.resample import StreamResampler
from jack_harness import JackCapture, JackServer
from protocol.messages import Chunk, Done
from signals import correlation, find_lag, ser_db

REPO = Path(__file__).resolve().parents[2]
RATE = 48000


class ServeProcess:
    """`python -m daemon ARGS`, its log read on a thread, its ZeroMQ endpoint taken from the log."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "daemon", *args], cwd=REPO, env=env,
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True)
        self.log: list[str] = []
        self.zmq = ""
        self._ready = threading.Event()
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

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


@pytest.fixture
def serve(jack_server: JackServer, riffd_cache: Path, tmp_path: Path) -> Iterator[Callable[..., ServeProcess]]:
    started: list[ServeProcess] = []

    def start(*flags: str) -> ServeProcess:
        args = ["--model", "debug/musicgen", "--device", "cpu", "--osc-port", "0", "--zmq-port", "0",
                "--out", str(tmp_path / "out"), "--cache-dir", str(riffd_cache), *flags]
        started.append(ServeProcess(args, {**os.environ, **jack_server.env}))
        return started[-1]

    yield start
    for process in started:
        if process.process.poll() is None:
            process.process.kill()
            process.process.wait(10)


def test_serve_play_plays_every_job_on_the_sound_card(
    serve: Callable[..., ServeProcess], start_capture: Callable[[], JackCapture]
) -> None:
    capture = start_capture()
    daemon = serve("--play", "--output-device", "system", "--play-buffer-s", "0.3")
    assert any("playback on system (JACK Audio Connection Kit) at 48000 Hz x 2 ch" in line for line in daemon.log)
    capture.wait_following("PortAudio")
    with Client(daemon.zmq, timeout_s=60) as client:
        events = list(client.generate("from the command line", duration_s=1.5, seed=2))
    assert isinstance(events[-1], Done)
    chunks = [e for e in events if isinstance(e, Chunk)]
    time.sleep(1.5 + 0.3 + 2.0)  # the job's length, the jitter buffer, a wide margin for a loaded machine
    captured = capture.stop()
    assert daemon.stop() == 0
    assert not any("playback stream" in line and "stopped" in line for line in daemon.log)

    stream = StreamResampler(chunks[0].sample_rate, RATE, 1)
    expected = np.concatenate([stream.push(c.audio) for c in chunks]
                              + [stream.push(np.zeros((1, 0), np.float32), last=True)], axis=1)[0]
    lag = find_lag(captured[0], expected)
    heard = captured[0, lag : lag + expected.size]
    assert correlation(heard, expected) > 0.9999 and ser_db(expected, heard) > 60.0


def test_serve_play_without_the_device_says_so_once_and_serves(serve: Callable[..., ServeProcess]) -> None:
    daemon = serve("--play", "--output-device", "no-such-card")
    with Client(daemon.zmq, timeout_s=60) as client:
        events = list(client.generate("still rendered", duration_s=0.5, seed=1))
    assert isinstance(events[-1], Done) and events[-1].frames == 16000
    assert daemon.stop() == 0
    off = [line for line in daemon.log if "playback" in line.lower()]
    assert len(off) == 1 and "playback is off: no output device matches 'no-such-card'" in off[0], off
