"""Test signals and the measurements that compare a capture with what was played."""

from __future__ import annotations

import numpy as np

from daemon.audio.resample import StreamResampler


def chirp(duration_s: float, sample_rate: int, f0_hz: float, f1_hz: float, amplitude: float = 0.4) -> np.ndarray:
    """A linear sweep, float32 `[frames]`: not periodic, so cross-correlation has one clear peak."""
    t = np.arange(round(duration_s * sample_rate)) / sample_rate
    rate = (f1_hz - f0_hz) / (2 * duration_s)
    return (amplitude * np.sin(2 * np.pi * (f0_hz * t + rate * t * t))).astype(np.float32)


def noise(duration_s: float, sample_rate: int, seed: int, amplitude: float = 0.2) -> np.ndarray:
    """Gaussian noise low-passed below a quarter of the rate, float32 `[frames]`."""
    rng = np.random.default_rng(seed)
    frames = round(duration_s * sample_rate)
    spectrum = np.fft.rfft(rng.standard_normal(frames))
    spectrum[len(spectrum) // 4 :] = 0
    x = np.fft.irfft(spectrum, frames)
    return (amplitude * x / np.abs(x).max()).astype(np.float32)


def stream_reference(samples: np.ndarray, chunk_frames: int, from_rate: int, to_rate: int) -> np.ndarray:
    """`[C, T]` resampled exactly as a voice does: one continuous stream fed chunk by chunk."""
    stream = StreamResampler(from_rate, to_rate, samples.shape[0])
    pieces = [stream.push(samples[:, i : i + chunk_frames]) for i in range(0, samples.shape[1], chunk_frames)]
    pieces.append(stream.push(np.zeros((samples.shape[0], 0), dtype=np.float32), last=True))
    return np.concatenate(pieces, axis=1)


def find_lag(captured: np.ndarray, reference: np.ndarray) -> int:
    """Where `reference` `[T]` starts inside `captured` `[N]` (N >= T), by FFT cross-correlation."""
    size = 1 << int(np.ceil(np.log2(len(captured) + len(reference))))
    corr = np.fft.irfft(np.fft.rfft(captured, size) * np.conj(np.fft.rfft(reference, size)), size)
    return int(np.argmax(corr[: len(captured) - len(reference) + 1]))


def ser_db(reference: np.ndarray, got: np.ndarray) -> float:
    """Signal-to-error ratio of `got` against `reference`, in dB (inf when identical)."""
    error = float(np.sum((got.astype(np.float64) - reference) ** 2))
    signal = float(np.sum(reference.astype(np.float64) ** 2))
    return float("inf") if error == 0.0 else 10.0 * np.log10(signal / error)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.astype(np.float64), b.astype(np.float64))[0, 1])
