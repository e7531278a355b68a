"""Conform on drum patterns of known tempo (with swing): onsets land on the 120 BPM grid."""

from __future__ import annotations

import numpy as np
import pytest

from daemon.tempo.beat_process import BEATS
from daemon.tempo.conform import BeatGrid, conform
from drums import attacks, pattern

RATE = 32000


@pytest.mark.parametrize("bpm,swing,lead_in_s", [(117.0, 0.33, 0.137), (123.0, 0.2, 0.61)])
def test_conformed_onsets_land_within_5_ms_of_the_grid(bpm: float, swing: float, lead_in_s: float) -> None:
    audio, _ = pattern(bpm, 8, RATE, swing=swing, lead_in_s=lead_in_s)
    out = conform(audio, RATE, 120.0, 4)
    assert out.confident and out.source_bpm == pytest.approx(bpm, abs=0.1)
    found = attacks(out.samples[0], RATE, threshold=0.3, hold_s=0.05)
    grid = np.arange(0.0, out.samples.shape[1] / RATE - 0.1, 0.5)  # quarter notes at 120 BPM
    errors_ms = np.array([(found[np.abs(found - at) < 0.04][0] - at) * 1000 for at in grid
                          if np.any(np.abs(found - at) < 0.04)])
    assert errors_ms.size >= 0.9 * grid.size  # every beat found (kick or snare on each)
    median_ms = float(np.median(np.abs(errors_ms)))
    print(f"\nconform {bpm:g} BPM (swing {swing}) -> 120: median |error| {median_ms:.2f} ms, max "
          f"{np.abs(errors_ms).max():.2f} ms over {errors_ms.size} beats")
    assert median_ms <= 5.0
    # The downbeat (kick with the bass note) is sample 0: the audio before it was the lead-in.
    assert abs(errors_ms[0]) <= 5.0
    # Unconformed, the same pattern drifts off the grid: what the test measures is the stretch.
    raw = attacks(audio[0, int(lead_in_s * RATE):], RATE, threshold=0.3, hold_s=0.05)
    drift_ms = [(raw[np.abs(raw - at) < 0.2][0] - at) * 1000 for at in grid[-4:] if np.any(np.abs(raw - at) < 0.2)]
    assert max(abs(d) for d in drift_ms) > 50.0


@pytest.mark.parametrize("seconds,frequency", [(3.0, 220.0), (6.9, 172.0), (6.9, 235.0), (6.9, 307.0)])
def test_audio_without_a_beat_is_left_as_it_is(seconds: float, frequency: float) -> None:
    # The longer tones are among those whose onset curves' noise peaks stood out of its median as far
    # as drums' beats (before MIN_BEAT_FLUX, 63 of 100 tones at 100-991 Hz over 6.9 s did).
    t = np.arange(int(seconds * RATE)) / RATE
    tone = (0.3 * np.sin(2 * np.pi * frequency * t)).astype(np.float32)[None, :]
    out = conform(tone, RATE, 120.0, 4)
    assert not out.confident and out.ratio == 1.0
    np.testing.assert_array_equal(out.samples, tone)


def test_a_downbeat_just_before_sample_0_starts_the_audio(monkeypatch: pytest.MonkeyPatch) -> None:
    # The tracker can put the first beat a few ms before the audio (an attack backtracked, or a beat
    # moved onto the fitted line): the downbeat is then the audio's start, not an index from its end.
    audio, _ = pattern(120.0, 8, RATE, swing=0.0, lead_in_s=0.0)
    beats = np.arange(16) * 0.5 - 0.03
    monkeypatch.setattr(BEATS, "track", lambda *args, **kwargs: BeatGrid(beats, 120.0, 0, True))
    out = conform(audio, RATE, 120.0, 4)
    assert out.confident and out.ratio == 1.0
    assert abs(out.samples.shape[1] - audio.shape[1]) <= 0.01 * audio.shape[1]
