"""Synthetic drum patterns of known tempo, and an attack detector precise to a sample, for conform tests."""

from __future__ import annotations

import numpy as np


def kick(sample_rate: int, seconds: float = 0.25) -> np.ndarray:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    frequency = 50 + 90 * np.exp(-t * 30)  # the pitch drop of an analogue kick
    phase = 2 * np.pi * np.cumsum(frequency) / sample_rate
    return (np.sin(phase) * np.exp(-t * 12)).astype(np.float32)


def snare(sample_rate: int, seconds: float = 0.18, seed: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    noise = np.random.default_rng(seed).standard_normal(t.size)
    body = np.sin(2 * np.pi * 190 * t)
    return ((0.6 * noise + 0.5 * body) * np.exp(-t * 25)).astype(np.float32)


def hat(sample_rate: int, seconds: float = 0.05, seed: int = 2) -> np.ndarray:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    noise = np.diff(np.random.default_rng(seed).standard_normal(t.size + 1))  # bright: differentiated noise
    return (0.25 * noise * np.exp(-t * 90)).astype(np.float32)


def pattern(bpm: float, bars: int, sample_rate: int, *, swing: float = 0.0, quantum: int = 4,
            lead_in_s: float = 0.0, bass: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """A rock beat: kick on 1 and 3 (and the "and" of 3), snare on 2 and 4, hats on every eighth, the
    off-beat eighths late by `swing` (a fraction of an eighth) and a bass note on each downbeat.

    Returns (mono float32 `[1, frames]`, the times in seconds of every quarter-note beat).
    """
    beat_s = 60.0 / bpm
    beats = bars * quantum
    frames = int((lead_in_s + (beats + 1) * beat_s) * sample_rate)
    out = np.zeros(frames, np.float32)

    def put(sound: np.ndarray, at_s: float, gain: float = 1.0) -> None:
        start = int(round(at_s * sample_rate))
        end = min(frames, start + sound.size)
        out[start:end] += gain * sound[: end - start]

    k, s, h = kick(sample_rate), snare(sample_rate), hat(sample_rate)
    t = np.arange(int(beat_s * sample_rate)) / sample_rate
    note = (0.3 * np.sin(2 * np.pi * 55 * t) * np.exp(-t * 3)).astype(np.float32)
    beat_times = lead_in_s + np.arange(beats) * beat_s
    for b, at in enumerate(beat_times):
        position = b % quantum
        if position in (0, 2):
            put(k, at)
        if position == 2:
            put(k, at + beat_s / 2, 0.7)
        if position in (1, 3):
            put(s, at, 0.8)
        if position == 0 and bass:
            put(note, at)
        put(h, at)
        put(h, at + beat_s / 2 * (1 + swing), 0.7)
    return out[None, :], beat_times


def attacks(mono: np.ndarray, sample_rate: int, *, threshold: float = 0.2, hold_s: float = 0.1) -> np.ndarray:
    """Times (s) where the signal's envelope first rises past `threshold` of its peak after `hold_s` quiet."""
    x = np.abs(mono)
    window = max(1, int(0.001 * sample_rate))
    envelope = np.convolve(x, np.ones(window) / window, mode="same")
    level = threshold * envelope.max()
    above = np.flatnonzero(envelope > level)
    if above.size == 0:
        return np.zeros(0)
    starts = [above[0]]
    hold = int(hold_s * sample_rate)
    for index in above[1:]:
        if index - starts[-1] > hold and envelope[index - 1] <= level:
            starts.append(index)
    return np.asarray(starts) / sample_rate
