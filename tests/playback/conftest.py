"""Fixtures for playback tests: a JACK server with the dummy driver and jack_capture recordings."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from jack_harness import JackCapture, JackServer, missing_tools


@pytest.fixture(scope="package")
def jack_server() -> Iterator[JackServer]:
    """One JACK server for the playback tests; this process's PortAudio is pointed at it."""
    missing = missing_tools()
    if missing:
        pytest.skip(f"JACK tools not installed: {', '.join(missing)} (bash .ci/setup.sh --test installs them)")
    server = JackServer()
    server.start()
    saved = {key: os.environ.get(key) for key in ("JACK_DEFAULT_SERVER", "JACK_NO_AUDIO_RESERVATION")}
    os.environ.update({key: server.env[key] for key in saved})
    try:
        yield server
    finally:
        # PortAudio's JACK host holds a client on the server from initialisation on; terminating
        # it once the server is gone fails an assertion (an abort at exit). So let go while the
        # server runs, and initialise again (without JACK) once it is gone.
        sd = sys.modules.get("sounddevice")
        if sd is not None:
            sd._terminate()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        server.stop()
        if sd is not None:
            sd._initialize()


@pytest.fixture
def start_capture(jack_server: JackServer, tmp_path: Path) -> Iterator[Callable[[], JackCapture]]:
    """Start a jack_capture of the speakers; every capture is stopped at teardown."""
    captures: list[JackCapture] = []

    def start() -> JackCapture:
        capture = JackCapture(jack_server, tmp_path / f"capture-{len(captures)}.wav")
        captures.append(capture)
        return capture.start()

    yield start
    for capture in captures:
        capture.stop_process()
