"""Jobs in time on a daemon without Link (its own timeline), over ZeroMQ and OSC; bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from clients import Client
from daemon_harness import OscPeer, start_fake_daemon
from protocol.errors import RiffdError
from protocol.messages import Chunk, Done

RATE = 16000  # the fake backend's


@pytest.fixture
def daemon(tmp_path: Path):
    started = start_fake_daemon(tmp_path / "out")
    yield started
    started.stop()


def test_a_take_in_bars_follows_the_requests_tempo_and_is_exactly_its_bars(daemon) -> None:
    with Client(daemon.zmq, timeout_s=30) as client:
        assert client.clock().source == "none"
        events = list(client.generate("drums", 0.0, bars=4, bpm=97.0, conform=False))
        done = events[-1]
        assert isinstance(done, Done)
        assert done.frames == round(4 * 4 * 60 / 97 * RATE)
        assert (done.bars, done.beats, done.bpm) == (pytest.approx(4.0, abs=1e-4), pytest.approx(16.0, abs=1e-4), 97.0)
        chunks = [e for e in events if isinstance(e, Chunk)]
        beats = np.array([c.beat for c in chunks])
        assert np.allclose(np.diff(beats), [c.frames / RATE * 97 / 60 for c in chunks[:-1]], atol=1e-6)
        clock = client.clock()
        assert (clock.source, clock.tempo) == ("own", 97.0)
        # The tempo request changes the own timeline; the next take in bars follows it.
        assert client.tempo(120.0).tempo == 120.0
        done = list(client.generate("drums", 0.0, bars=2, launch="bar", loop=True))[-1]
        assert done.frames == round(2 * 4 * 0.5 * RATE) and done.beat % 4 == 0 and done.bpm == 120.0
        status = client.status()
        assert (status.clock, status.tempo) == ("own", 120.0)


@pytest.mark.parametrize("options,message", [
    (dict(bars=0), "bars must be within"),
    (dict(bars=4, duration_s=2.0), "give bars or a duration_s"),
    (dict(quantum=17, bars=1), "quantum"),
    (dict(bpm=1000.0, bars=1), "bpm must be within"),
    (dict(bpm=19.0, bars=1), "bpm must be within"),
    (dict(launch="bar"), "launch bar needs a tempo"),
    (dict(loop=True, duration_s=2.0), "loop needs bars"),
])
def test_bad_tempo_fields_are_invalid_arguments_and_the_daemon_serves_on(daemon, options: dict, message: str) -> None:
    duration_s = options.pop("duration_s", 0.0 if "bars" in options else 2.0)
    with Client(daemon.zmq, timeout_s=30) as client:
        try:  # refused by the client's own check of the schema, or by the daemon as an error event
            error = list(client.generate("x", duration_s, **options))[-1]
            code, text = error.code, error.message
        except RiffdError as exc:
            code, text = exc.code, exc.message
        assert code == "invalid_argument" and message in text
        assert isinstance(list(client.generate("still here", 0.5))[-1], Done)


def test_osc_duration_zero_with_bars_and_the_clock(daemon) -> None:
    peer = OscPeer(daemon.osc_port)
    try:
        peer.send("/riffd/tempo", 133.0)
        address, args = peer.receive()
        assert address == "/riffd/clock" and args[0] == "own" and args[1] == pytest.approx(133.0)
        peer.send("/riffd/generate", "osc bars", 0.0, "bars", 1, "launch", "bar", "conform", 0, "job", "osc-bars")
        messages = peer.receive_until("/riffd/done", "osc-bars")
        done = messages[-1][1]
        frames = round(4 * 60 / 133 * RATE)
        assert done[2] == frames and done[4] == pytest.approx(4.0, abs=1e-3) and done[5] == pytest.approx(1.0, abs=1e-3)
        chunk = next(args for address, args in messages if address == "/riffd/chunk")
        assert len(chunk) == 7 and chunk[6] % 4 == pytest.approx(0.0, abs=1e-3)  # on a bar
        peer.send("/riffd/clock")
        address, args = peer.receive()
        assert address == "/riffd/clock" and 0.0 <= args[3] < 4.0 and args[5] == 4
        peer.send("/riffd/tempo", 5.0)
        address, args = peer.receive()
        assert address == "/riffd/error" and args[1] == "invalid_argument"
    finally:
        peer.close()


# The fake backend's tone is 220 + seed % 500 Hz. Before conform's MIN_BEAT_FLUX, the beat tracker
# (librosa 0.11) found a steady beat in the tones at these seeds whose first downbeat lay before the
# audio's start (loop False: 240 Hz; True: 222 Hz), or a grid so much slower than asked that its
# stretch left too little (436 Hz; 311 Hz); each of these takes came out short or padded.
@pytest.mark.parametrize("loop,seed", [(False, 20), (False, 216), (True, 2), (True, 91)])
def test_a_take_is_exactly_its_bars_whatever_its_beat_tracking_finds(daemon, loop: bool, seed: int) -> None:
    with Client(daemon.zmq, timeout_s=30) as client:
        events = list(client.generate("drums", 0.0, bars=2, bpm=120.0, loop=loop, seed=seed))
    done = events[-1]
    assert isinstance(done, Done) and done.frames == round(2 * 4 * 0.5 * RATE)
    # all of it the tone (peaks of 0.5 in every 10 ms), no silence padding it out (but for the end's fade)
    audio = np.concatenate([e.audio for e in events if isinstance(e, Chunk)], axis=1)
    assert audio.shape[1] == done.frames
    window = RATE // 100
    peaks = np.abs(audio[0, : -window]).reshape(-1, window).max(axis=1)
    assert peaks.min() > 0.3, np.flatnonzero(peaks <= 0.3)[:5]


def test_a_take_in_bars_over_the_limit_says_what_it_would_generate(tmp_path: Path) -> None:
    with start_fake_daemon(tmp_path / "out", max_duration_s=60.0) as daemon, \
            Client(daemon.zmq, timeout_s=30) as client:
        # 26 bars at 120 bpm are 52 s, under the limit; conformed they are generated as 60.5 s.
        error = list(client.generate("x", 0.0, bars=26, bpm=120.0))[-1]
        assert error.code == "duration_too_long"
        assert "26 bars at 120 bpm are 52.0 s, generated as 60.5 s to be conformed" in error.message
        assert "--max-duration-s of 60 s" in error.message
        done = list(client.generate("x", 0.0, bars=26, bpm=120.0, conform=False))[-1]
        assert isinstance(done, Done) and done.frames == 52 * RATE
