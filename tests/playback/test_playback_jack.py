"""The player on a real JACK server (dummy driver), heard through jack_capture.

Each test records what reaches `system:playback_*`, finds the played signal in the recording by
cross-correlation, and compares sample by sample.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from daemon.audio.playback import PlaybackConfig, PlaybackUnavailable, Player, Voice, open_player
from daemon.audio.resample import resample
from jack_harness import JackCapture, JackServer
from signals import chirp, correlation, find_lag, noise, ser_db, stream_reference

REPO = Path(__file__).resolve().parents[2]
RATE = 48000  # the JACK server's


@dataclass
class Rig:
    player: Player
    capture: JackCapture


@pytest.fixture
def rig(jack_server: JackServer, start_capture: Callable[[], JackCapture]) -> Iterator[Rig]:
    """A capture of the speakers, then a player on JACK that the capture follows."""
    capture = start_capture()
    player = Player.open(PlaybackConfig(device="system", buffer_s=0.2))
    try:
        assert player.sample_rate == RATE and player.channels == 2
        capture.wait_following("PortAudio")
        yield Rig(player, capture)
    finally:
        player.close()


def push_faster_than_real_time(voice: Voice, samples: np.ndarray, chunk_frames: int, speed: float) -> None:
    """Push `[C, T]` chunk by chunk, like a generator running at `speed` x real time, then finish."""
    for start in range(0, samples.shape[1], chunk_frames):
        voice.push(samples[:, start : start + chunk_frames])
        time.sleep(chunk_frames / voice.sample_rate / speed)
    voice.finish()


def record(rig: Rig, timeout_s: float = 15.0) -> np.ndarray:
    """Wait for every voice to play out, let JACK's last periods pass, stop the capture `[2, N]`."""
    assert rig.player.wait_idle(timeout_s), "playback did not end"
    time.sleep(0.1)
    return rig.capture.stop()


def test_known_signal_reaches_the_speakers_unchanged(rig: Rig) -> None:
    source_rate, chunk = 32000, 1600  # MusicGen's rate, 50 ms chunks
    played = np.stack([chirp(1.5, source_rate, 100, 8000), noise(1.5, source_rate, seed=7)])
    voice = rig.player.add_voice("known", source_rate, 2)
    push_faster_than_real_time(voice, played, chunk, speed=5.0)
    captured = record(rig)

    expected = stream_reference(played, chunk, source_rate, RATE)
    lag = find_lag(captured[0], expected[0])
    heard = captured[:, lag : lag + expected.shape[1]]
    for channel in range(2):
        assert correlation(heard[channel], expected[channel]) > 0.9999
        assert ser_db(expected[channel], heard[channel]) > 60.0
    # One continuous resampler, not chunk by chunk: the whole-buffer resampling agrees to ~90 dB
    # (resampling each 50 ms chunk on its own scores ~41 dB against it, from the edges).
    whole = resample(played, source_rate, RATE)
    assert min(ser_db(whole[c], heard[c]) for c in range(2)) > 70.0
    assert np.all(captured[:, :lag] == 0.0), "nothing before the job"
    assert rig.player.status().underruns == 0
    assert voice.underruns == 0 and voice.frames_played == expected.shape[1]


def test_overlapping_jobs_are_mixed_with_their_gains(rig: Rig) -> None:
    a = noise(1.2, 32000, seed=1)[None]  # a mono job at MusicGen's rate
    b = np.stack([noise(1.2, RATE, seed=2), noise(1.2, RATE, seed=3)])  # a stereo one at the device's
    voice_a = rig.player.add_voice("a", 32000, 1, gain=0.5)
    push_faster_than_real_time(voice_a, a, 3200, speed=20.0)
    deadline = time.monotonic() + 5
    while voice_a.frames_played < RATE // 2:  # b starts while a is half a second in
        assert time.monotonic() < deadline, "voice a never started"
        time.sleep(0.01)
    voice_b = rig.player.add_voice("b", RATE, 2, gain=0.8)
    push_faster_than_real_time(voice_b, b, 4800, speed=20.0)
    captured = record(rig)

    ref_a = stream_reference(a, 3200, 32000, RATE)[0]
    lag_a, lag_b = find_lag(captured[0], ref_a), find_lag(captured[1], b[1])
    assert lag_a < lag_b < lag_a + ref_a.size, "b began while a was sounding"
    rebuilt = np.zeros_like(captured)
    rebuilt[:, lag_a : lag_a + ref_a.size] += 0.5 * ref_a
    rebuilt[:, lag_b : lag_b + b.shape[1]] += 0.8 * b
    assert ser_db(rebuilt, captured) > 60.0
    overlap = slice(lag_b, lag_a + ref_a.size)
    for part, gain, ref in ((slice(lag_b - lag_a, ref_a.size), 0.5, ref_a), (slice(0, overlap.stop - lag_b), 0.8, b[0])):
        # Each job alone explains a good part of the overlap: both are audible there.
        assert correlation(captured[0, overlap], gain * ref[part]) > 0.3
    assert rig.player.status().underruns == 0


def test_cancel_fades_out_instead_of_cutting(rig: Rig) -> None:
    voice = rig.player.add_voice("long", RATE, 1)
    voice.push(np.full((1, 3 * RATE), 0.5, dtype=np.float32))  # DC: the envelope is the signal
    deadline = time.monotonic() + 5
    while voice.frames_played < RATE // 4:
        assert time.monotonic() < deadline, "voice never started"
        time.sleep(0.01)
    cancelled_at = time.monotonic()
    voice.cancel()
    assert voice.ended.wait(1.0)
    ended_after_s = time.monotonic() - cancelled_at
    captured = record(rig)[0]

    sounding = np.flatnonzero(captured > 0.0)
    tail = captured[sounding[0] : sounding[-1] + 1]
    steady = np.flatnonzero(tail == 0.5)
    fade = tail[steady[-1] + 1 :]
    assert 0.25 * RATE <= steady.size < 3 * RATE, "it played for a while, and not to the end"
    assert 200 <= fade.size <= 240, f"a {PlaybackConfig().fade_ms} ms fade, got {fade.size} frames"
    assert np.all(np.diff(fade) < 0), "the fade falls monotonically"
    assert np.max(np.abs(np.diff(tail))) < 0.5 / 200, "no step bigger than the ramp's: no click"
    assert np.all(captured[sounding[-1] + 1 :] == 0.0)
    assert ended_after_s < 0.5


def test_a_starved_job_counts_underruns_and_still_plays_everything(rig: Rig) -> None:
    played = noise(0.6, RATE, seed=9)[None]
    voice = rig.player.add_voice("slow", RATE, 1)
    voice.push(played[:, : RATE // 4])  # over the 0.2 s buffer, then a stall longer than it
    time.sleep(0.6)
    voice.push(played[:, RATE // 4 :])
    voice.finish()
    captured = record(rig)
    assert rig.player.status().underruns >= 1
    assert voice.frames_played == played.shape[1]
    # Both halves were heard, with silence between them.
    first = find_lag(captured[0], played[0, : RATE // 4])
    second = find_lag(captured[0], played[0, RATE // 4 :])
    assert second - first > RATE // 4 + RATE // 10


def test_an_unknown_device_is_one_clear_message(jack_server: JackServer, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(PlaybackUnavailable, match=r"no output device matches 'no-such-card'; outputs are: \[\d+\] system"):
        Player.open(PlaybackConfig(device="no-such-card"))
    with caplog.at_level(logging.WARNING, logger="daemon.audio.playback"):
        assert open_player(PlaybackConfig(device="no-such-card")) is None
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("daemon.audio.playback")]
    assert len(messages) == 1 and messages[0].startswith("playback is off: no output device matches")


def test_without_portaudio_playback_is_off_with_one_message() -> None:
    # What a machine without libportaudio2 sees: sounddevice's own library lookup finds nothing.
    script = (
        "import ctypes.util, logging\n"
        "ctypes.util.find_library = lambda name: None\n"
        "logging.basicConfig(level=logging.INFO, format='%(levelname)s %(message)s')\n"
        "from daemon.audio.playback import PlaybackConfig, open_player\n"
        "print('player', open_player(PlaybackConfig()))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "player None"
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == ["WARNING playback is off: PortAudio is not available (PortAudio library not found); "
                     "install libportaudio2 to play on the sound card"]


def test_a_vanishing_jack_server_turns_playback_off_and_the_process_still_exits(jack_server: JackServer) -> None:
    # Its own server, in its own process: the shared one stays up for the other tests.
    script = (
        "import logging, sys, time\n"
        "logging.basicConfig(level=logging.WARNING, format='%(levelname)s %(message)s')\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "import os\n"
        "import numpy as np\n"
        "from jack_harness import JackServer\n"
        "from daemon.audio.playback import PlaybackConfig, Player\n"
        "server = JackServer(); server.start(); os.environ.update(server.env)\n"
        "player = Player.open(PlaybackConfig(device='system', buffer_s=0.1))\n"
        "voice = player.add_voice('x', 48000, 1); voice.push(np.zeros((1, 48000 * 5), np.float32))\n"
        "time.sleep(0.5); server.stop()\n"
        "deadline = time.monotonic() + 10\n"
        "while player.status().enabled and time.monotonic() < deadline: time.sleep(0.05)\n"
        "print('enabled', player.status().enabled, flush=True)\n"
        "print('voice ended', voice.ended.wait(5), flush=True)\n"
        "start = time.monotonic(); player.close(); print('closed in', round(time.monotonic() - start, 2), flush=True)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == ["enabled False", "voice ended True"]
    assert float(lines[2].split()[-1]) < 1.0
    assert "ERROR playback stream on system stopped (device or server gone); playback is off" in result.stderr
    assert "WARNING playback device system went away; leaving its stream" in result.stderr
