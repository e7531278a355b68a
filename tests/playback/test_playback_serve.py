"""`python -m daemon --play` (what `riffd serve --play` runs) as its own process, on a JACK server."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from clients import Client
from daemon.child import DaemonChild
from daemon.audio.resample import StreamResampler
from jack_harness import JackCapture, JackServer
from protocol.messages import Chunk, Done
from signals import correlation, find_lag, ser_db

RATE = 48000


@pytest.fixture
def serve(jack_server: JackServer, riffd_cache: Path, tmp_path: Path) -> Iterator[Callable[..., DaemonChild]]:
    started: list[DaemonChild] = []

    def start(*flags: str) -> DaemonChild:
        args = ["--model", "debug/musicgen", "--device", "cpu", "--osc-port", "0", "--zmq-port", "0",
                "--out", str(tmp_path / "out"), "--cache-dir", str(riffd_cache), *flags]
        started.append(DaemonChild(args, env=jack_server.env))
        return started[-1]

    yield start
    for process in started:
        process.kill()


def test_serve_play_plays_every_job_on_the_sound_card(
    serve: Callable[..., DaemonChild], start_capture: Callable[[], JackCapture]
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


def test_serve_play_without_the_device_says_so_once_and_serves(serve: Callable[..., DaemonChild]) -> None:
    daemon = serve("--play", "--output-device", "no-such-card")
    with Client(daemon.zmq, timeout_s=60) as client:
        events = list(client.generate("still rendered", duration_s=0.5, seed=1))
    assert isinstance(events[-1], Done) and events[-1].frames == 16000
    assert daemon.stop() == 0
    off = [line for line in daemon.log if "playback" in line.lower()]
    assert len(off) == 1 and "playback is off: no output device matches 'no-such-card'" in off[0], off
