"""Conforming an endless stream as it plays (for jams): no gaps, its beats pulled onto the grid and kept there."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal

from daemon.audio.types import AudioChunk
from daemon.tempo.stream_conform import StreamConformer, conform_stream
from daemon.tempo.timeline import TimelineState
from drums import attacks, pattern

RATE = 32000
CHUNK = RATE // 2


@pytest.mark.parametrize("bpm,lead_in_s", [(123.0, 0.61)])
def test_a_stream_is_pulled_onto_the_grid_without_gaps_and_stays(bpm: float, lead_in_s: float) -> None:
    audio, _ = pattern(bpm, 20, RATE, swing=0.25, lead_in_s=lead_in_s)
    # The timeline: 120 BPM, the stream's first output sample launched on beat 8 (a bar) at t=100 s.
    line = TimelineState(120.0, 8.0, 100.0)
    conformer = StreamConformer(RATE, 1, state=lambda: line, launch_s=100.0, quantum=4, prompt_bpm=120.0)
    chunks = [AudioChunk(i, i * CHUNK, audio[:, s : s + CHUNK], RATE) for i, s in enumerate(range(0, audio.shape[1], CHUNK))]
    out = list(conform_stream(iter(chunks), conformer))
    # Gapless: each chunk starts where the last ended, and carries the timeline's beat there.
    assert [c.offset_samples for c in out] == list(np.cumsum([0] + [c.frames for c in out[:-1]]))
    for c in out:
        assert c.beat == pytest.approx(8.0 + c.offset_samples / RATE * 2.0, abs=1e-9)
    samples = np.concatenate([c.audio for c in out], axis=1)[0]
    # As long as the input at the tempi's ratio, give or take the phase taken up once (under a bar).
    assert abs(samples.size - audio.shape[1] * bpm / 120.0) < 2.0 * RATE

    found = attacks(samples, RATE, threshold=0.3, hold_s=0.05)
    beats_s = np.arange(0.0, samples.size / RATE - 0.3, 0.5)  # every timeline beat after the launch

    def errors_ms(since_s: float) -> np.ndarray:
        near = [found[np.abs(found - at) < 0.04] for at in beats_s if at >= since_s]
        return np.array([(hit[0] - at) * 1000 for hit, at in zip(near, beats_s[beats_s >= since_s]) if hit.size])

    locked = errors_ms(20.0)
    assert locked.size >= 0.9 * np.sum(beats_s >= 20.0)
    print(f"\nstream conform {bpm:g} -> 120 BPM: after 20 s median |error| {np.median(np.abs(locked)):.1f} ms, "
          f"max {np.abs(locked).max():.1f} ms over {locked.size} beats")
    assert np.median(np.abs(locked)) <= 10.0 and np.abs(locked).max() <= 30.0
    # The bars are the timeline's: the pattern's only off-beat kick (on the "and" of its third beat,
    # counting from the one) follows the timeline's beats 2 mod 4 and no others.
    low = scipy.signal.sosfilt(scipy.signal.butter(4, 150.0, fs=RATE, output="sos"), samples)
    energy = [float(np.mean(low[int((at + 0.22) * RATE) : int((at + 0.32) * RATE)] ** 2))
              for at in beats_s if at >= 20.0]
    first = int(np.flatnonzero(beats_s >= 20.0)[0])  # beats_s[k] is timeline beat 8 + k
    by_phase = [float(np.mean(energy[(p - first) % 4 :: 4])) for p in range(4)]
    assert int(np.argmax(by_phase)) == 2 and by_phase[2] > 5 * max(by_phase[0], by_phase[1], by_phase[3]), by_phase


def test_a_tempo_change_on_the_timeline_is_followed_without_a_gap() -> None:
    """The DAW moves the session from 120 to 126 BPM 16 s into a jam: the stream plays on, gapless, and
    its beats land on the new grid a few bars later."""
    audio, _ = pattern(123.0, 18, RATE, swing=0.25, lead_in_s=0.61)
    before = TimelineState(120.0, 8.0, 100.0)
    change_s = 16.0
    after = TimelineState(126.0, before.beat_at(100.0 + change_s), 100.0 + change_s)
    conformer: StreamConformer

    def state() -> TimelineState:
        return before if conformer.out_pos < change_s * RATE else after

    conformer = StreamConformer(RATE, 1, state=state, launch_s=100.0, quantum=4, prompt_bpm=120.0)
    chunks = [AudioChunk(i, s, audio[:, s : s + CHUNK], RATE) for i, s in enumerate(range(0, audio.shape[1], CHUNK))]
    out = list(conform_stream(iter(chunks), conformer))
    assert [c.offset_samples for c in out] == list(np.cumsum([0] + [c.frames for c in out[:-1]]))
    samples = np.concatenate([c.audio for c in out], axis=1)[0]
    found = attacks(samples, RATE, threshold=0.3, hold_s=0.05)
    # The new grid's beats, as output seconds (output sample n plays at 100 s + n / RATE).
    first = np.ceil(after.beat_at(100.0 + change_s + 10.0))
    grid_s = np.array([after.time_at(b) - 100.0 for b in np.arange(first, after.beat_at(100.0 + samples.size / RATE - 0.3))])
    errors_ms = np.array([(hit[0] - at) * 1000 for at in grid_s if (hit := found[np.abs(found - at) < 0.04]).size])
    print(f"\nstream conform 123 -> 120 -> 126 BPM: from 10 s after the change median |error| "
          f"{np.median(np.abs(errors_ms)):.1f} ms over {errors_ms.size} beats")
    # Measured here: 8-15 ms late over these beats. The steering leaves a slow sawtooth (the error
    # grows ~0.4 ms/s and falls back every ~25 s, bounded near 13 ms over a minute); not yet found why.
    assert errors_ms.size >= 0.9 * grid_s.size
    assert np.median(np.abs(errors_ms)) <= 15.0 and np.abs(errors_ms).max() <= 30.0
