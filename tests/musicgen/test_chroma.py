"""The melody chromagram against an independent computation with transformers' numpy audio tools."""

from __future__ import annotations

import numpy as np
from transformers.audio_utils import chroma_filter_bank, spectrogram, window_function

from daemon.audio.types import Audio
from daemon.models.musicgen.chroma import ChromaSettings, chromagram


def test_chroma_matches_numpy_reference():
    settings = ChromaSettings()
    rate = settings.sampling_rate
    t = np.arange(4 * rate) / rate
    # A melody that moves: A4 for a second, then C5, E5, G4.
    freqs = np.repeat([440.0, 523.25, 659.25, 392.0], rate)
    wave = (0.4 * np.sin(2 * np.pi * np.cumsum(freqs) / rate) + 0.01 * np.random.default_rng(0).standard_normal(t.size))
    ours = chromagram(Audio(wave[None].astype(np.float32), rate), settings)[0].numpy()

    padded = np.zeros(settings.chunk_length_s * rate)
    padded[: wave.size] = wave
    window = window_function(settings.n_fft, "hann", periodic=True)
    power = spectrogram(padded, window, frame_length=settings.n_fft, hop_length=settings.hop_length, power=2.0,
                        center=True, pad_mode="reflect") / np.sum(window**2)
    filters = chroma_filter_bank(num_frequency_bins=settings.n_fft, num_chroma=12, sampling_rate=rate, tuning=0)
    raw = filters @ power
    expected = np.argmax(raw / np.maximum(np.abs(raw).max(axis=0, keepdims=True), 1e-6), axis=0)

    assert ours.shape == (expected.size, 12) and np.all(ours.sum(axis=1) == 1)
    frames_with_music = slice(1, 4 * rate // settings.hop_length - 1)
    np.testing.assert_array_equal(ours.argmax(axis=1)[frames_with_music], expected[frames_with_music])
    # And the notes are the ones played: A=9, C=0, E=4, G=7 in librosa's C-based chroma.
    second = rate // settings.hop_length
    assert [int(np.bincount(ours.argmax(axis=1)[i * second + 2:(i + 1) * second - 2]).argmax()) for i in range(4)] == [9, 0, 4, 7]
