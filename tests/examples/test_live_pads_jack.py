"""Live pads for real: controller presses, `python -m daemon` playing on a JACK server, the speakers recorded.

The daemon runs without --play, so only takes whose requests ask for playback are heard: what
the speakers get must be the pad's take (regenerated with the same seed for the reference).
Uses the playback tests' JACK harness (dummy driver, jack_capture).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from recipe_harness import ROOT
from pythonosc.osc_message_builder import OscMessageBuilder

sys.path.insert(0, str(ROOT / "tests" / "playback"))
from jack_harness import JackCapture, JackServer, missing_tools  # noqa: E402
from signals import correlation, find_lag, ser_db, stream_reference  # noqa: E402

from clients import Client  # noqa: E402
from protocol.messages import Chunk  # noqa: E402

RATE = 48000


@pytest.fixture
def jack() -> Iterator[JackServer]:
    missing = missing_tools()
    if missing:
        pytest.skip(f"JACK tools not installed: {', '.join(missing)}")
    server = JackServer(sample_rate=RATE)
    server.start()
    yield server
    server.stop()


def _start_daemon(server: JackServer, cache: Path, out: Path) -> tuple[subprocess.Popen, str]:
    """`python -m daemon` on the JACK server (no --play); its ZeroMQ endpoint from its log."""
    process = subprocess.Popen(
        [sys.executable, "-m", "daemon", "--model", "debug/musicgen", "--device", "cpu", "--osc-port", "0",
         "--zmq-port", "0", "--out", str(out), "--cache-dir", str(cache), "--output-device", "system",
         "--play-buffer-s", "0.3"],
        cwd=ROOT, env={**os.environ, **server.env}, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True)
    endpoint: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            found = re.search(r"ZeroMQ requests (tcp://\S+),", line)
            if found:
                endpoint.append(found.group(1))
            if " ready: " in line:
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(120):
        process.kill()
        raise AssertionError("the daemon never said ready")
    return process, endpoint[0]


def _press(sock: socket.socket, port: int, address: str) -> None:
    builder = OscMessageBuilder(address)
    builder.add_arg(1.0)
    sock.sendto(builder.build().dgram, ("127.0.0.1", port))


def _wait_line(process: subprocess.Popen, prefix: str, timeout_s: float = 60.0) -> str:
    deadline = time.monotonic() + timeout_s
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if line.startswith(prefix):
            return line
        if not line and process.poll() is not None:
            break
    raise AssertionError(f"no line starting {prefix!r}")


def test_a_pad_press_is_heard_on_the_daemons_sound_card(jack: JackServer, riffd_cache: Path, tmp_path: Path) -> None:
    daemon, endpoint = _start_daemon(jack, riffd_cache, tmp_path / "out")
    capture = JackCapture(jack, tmp_path / "speakers.wav")
    pads = tmp_path / "pads.toml"
    pads.write_text('[[pad]]\nprompt = "warm-up"\nseed = 1\nduration_s = 0.5\n\n'
                    '[[pad]]\nprompt = "the take"\nseed = 5\nduration_s = 1.5\n')
    recipe = subprocess.Popen(
        [sys.executable, "-m", "clients.examples.live_pads", "--pads", str(pads), "--listen", "0", "--local",
         "--endpoint", endpoint, "--feedback", "127.0.0.1:9", "--max-jobs", "2"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    controller = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        port = int(_wait_line(recipe, "listening").split("port ")[1].split(",")[0])
        capture.start()
        # The first take opens the sound card (the daemon plays only what asks to be played) ...
        _press(controller, port, "/1/push1")
        assert "done" in _wait_line(recipe, "pad 1:")
        capture.wait_following("PortAudio")
        time.sleep(0.5 + 0.3 + 0.4)  # let the warm-up play out: the mixer would sum it with the take
        # ... so the recording holds all of the second, alone.
        _press(controller, port, "/1/push2")
        assert "done frames=48000 seed=5" in _wait_line(recipe, "pad 2:")
        assert recipe.wait(30) == 0
        time.sleep(1.5 + 0.3 + 0.5)  # the take's length, the jitter buffer, a margin
        captured = capture.stop()
        with Client(endpoint, timeout_s=60) as client:
            chunks = [e for e in client.generate("the take", duration_s=1.5, seed=5, temperature=1.0, play=False)
                      if isinstance(e, Chunk)]
    finally:
        controller.close()
        capture.stop_process()
        for process in (recipe, daemon):
            if process.poll() is None:
                process.terminate()
                process.wait(30)
    take = np.concatenate([c.audio for c in chunks], axis=1)
    expected = stream_reference(take, chunks[0].frames, chunks[0].sample_rate, RATE)[0]
    lag = find_lag(captured[0], expected)
    heard = captured[0, lag:lag + expected.size]
    assert heard.size == expected.size
    assert correlation(heard, expected) > 0.9999 and ser_db(expected, heard) > 60.0
