"""A looped take (issue 15) played by the daemon on the JACK dummy server, recorded by jack_capture:
round its seam, repetition after repetition, it sounds as smooth as anywhere inside it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from clients import Client
from daemon.audio.resample import resample
from daemon_harness import DaemonThread, fake_loader, make_config
from jack_harness import JackCapture, JackServer, late_start
from protocol.messages import Chunk, Done

RATE = 48000  # the JACK server's
MODEL_RATE = 16000  # the fake backend's
BPM = 97.0  # a bar of 2.474 s: the fake tone (357 Hz) does not fit it a whole number of times
SEED = 137  # the fake tone's frequency is 220 + seed Hz
#: The largest second difference a click-free capture of the 0.5-amplitude tone may show (the tone's
#: own is 0.5 * (2 pi 357 / 48000)^2 = 0.0011; a step of 0.01 anywhere would exceed it).
SMOOTH_D2 = 0.004
SEAM_WINDOW = int(0.005 * RATE)


def _second_difference(x: np.ndarray) -> np.ndarray:
    return np.abs(x[2:] - 2 * x[1:-1] + x[:-2])


def _circular(loop: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """The loop at `to_rate` as if it went on forever (resampled with its other end either side)."""
    wrap = 4096
    resampled = resample(np.concatenate([loop[:, -wrap:], loop, loop[:, :wrap]], axis=1), from_rate, to_rate)
    start = round(wrap * to_rate / from_rate)
    return resampled[0, start : start + round(loop.shape[1] * to_rate / from_rate)]


def test_a_looped_take_plays_round_its_seam_without_a_click(jack_server: JackServer,
                                                            start_capture: Callable[[], JackCapture],
                                                            tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="daemon.audio.playback.voice")
    config = make_config(tmp_path / "out", models=("fake/fast",), play=True, output_device="system",
                         play_buffer_s=0.3)
    daemon = DaemonThread(config, loader=fake_loader).start()
    try:
        capture = start_capture()
        capture.wait_following("PortAudio")
        with Client(daemon.zmq, timeout_s=30) as client:
            events = list(client.generate("tone", 0.0, bars=1, bpm=BPM, loop=True, conform=False, seed=SEED))
            done = events[-1]
            assert isinstance(done, Done) and done.beat is not None, done
            loop = np.concatenate([e.audio for e in events if isinstance(e, Chunk)], axis=1)
            assert loop.shape[1] == round(4 * 60 / BPM * MODEL_RATE) == done.frames
            # Until the loop has gone round twice (two seams heard) and a little more.
            clock = client.clock()
            time.sleep(max(0.0, (done.beat - clock.beat) * 60 / BPM) + 2.3 * 4 * 60 / BPM + 0.5)
            client.cancel(done.job)
        audio = capture.stop()[0]
    finally:
        daemon.stop()

    loop_frames = round(loop.shape[1] * RATE / MODEL_RATE)
    # A launch stalled by the dummy driver on a loaded machine starts the loop part-way in.
    skipped, late_ms = late_start((r.getMessage() for r in caplog.records), done.job)
    assert skipped <= round(late_ms / 1000 * RATE) + 3, "skipped more than the callback was late"  # log: 0.1 ms
    skipped %= loop_frames
    if skipped:
        print(f"\nthe launch's callback came {late_ms:.1f} ms late: the loop began {skipped} frames in")
    # From where the loop's first frame would have sounded. A late voice starts mid-tone, on a block
    # of the stream: its first sample is the capture's first non-zero one (the card gets exact zeros before).
    start = int(np.flatnonzero(np.abs(audio) > (0.0 if skipped else 0.02))[0]) - skipped
    assert start >= 0
    heard = audio[start : start + 2 * loop_frames + RATE // 10]
    assert heard.size == 2 * loop_frames + RATE // 10, "the capture ended before two repetitions"
    d2 = _second_difference(heard)
    seams = [k * loop_frames for k in (1, 2)]
    seam_d2 = [float(d2[s - SEAM_WINDOW : s + SEAM_WINDOW].max()) for s in seams]
    inside = np.ones(d2.size, bool)
    inside[: skipped + SEAM_WINDOW] = False  # the voice's own start
    for s in seams:
        inside[s - SEAM_WINDOW : s + SEAM_WINDOW] = False
    inside_d2 = float(d2[inside].max())
    print(f"\nloop seam: max second difference {max(seam_d2):.5f} at the seams, {inside_d2:.5f} inside")
    assert max(seam_d2) < SMOOTH_D2 and inside_d2 < SMOOTH_D2
    # What sounds is the loop, repeated: each repetition is the take at the device rate.
    expected = _circular(loop, MODEL_RATE, RATE)
    for k in range(2):
        first = SEAM_WINDOW + (skipped if k == 0 else 0)
        got = heard[k * loop_frames + first : (k + 1) * loop_frames - SEAM_WINDOW]
        want = expected[first : loop_frames - SEAM_WINDOW]
        assert np.corrcoef(got, want)[0, 1] > 0.999

    # The measure can fail: the same take cut at its bars and repeated as it is clicks at the seam.
    naive = np.tile(_circular(_raw_tone(loop.shape[1]), MODEL_RATE, RATE), 2)
    assert float(_second_difference(naive)[loop_frames - SEAM_WINDOW : loop_frames + SEAM_WINDOW].max()) > 10 * SMOOTH_D2


def _raw_tone(frames: int) -> np.ndarray:
    """The fake backend's tone for SEED, cut at `frames` (what a loop without a crossfade would be)."""
    t = np.arange(frames) / MODEL_RATE
    return (0.5 * np.sin(2 * np.pi * (220.0 + SEED % 500) * t)).astype(np.float32)[None, :]
