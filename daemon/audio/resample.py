"""Sample-rate and channel conversion with soxr (whole buffers and continuous streams)."""

from __future__ import annotations

import numpy as np
import soxr

from daemon.audio.types import Audio


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Resample float32 `[channels, frames]`; returns the input itself when the rates match."""
    if from_rate == to_rate:
        return samples
    # soxr works on [frames, channels]; "VHQ" keeps the passband flat for music.
    out = soxr.resample(np.ascontiguousarray(samples.T), from_rate, to_rate, quality="VHQ")
    return np.ascontiguousarray(out.T, dtype=np.float32)


def convert_channels(samples: np.ndarray, channels: int) -> np.ndarray:
    """Mix down to mono by averaging, or spread mono to every channel; `[C, T] -> [channels, T]`."""
    have = samples.shape[0]
    if have == channels:
        return samples
    if channels == 1:
        return samples.mean(axis=0, keepdims=True, dtype=np.float32)
    if have == 1:
        return np.repeat(samples, channels, axis=0)
    raise ValueError(f"cannot map {have} channels to {channels}")


def conform(audio: Audio, sample_rate: int, channels: int) -> Audio:
    """`audio` at `sample_rate` with `channels` channels (mixing before resampling saves work)."""
    samples = audio.samples
    if channels < audio.channels:
        samples = convert_channels(samples, channels)
    samples = resample(samples, audio.sample_rate, sample_rate)
    samples = convert_channels(samples, channels)
    return Audio(np.ascontiguousarray(samples, dtype=np.float32), sample_rate)


class StreamResampler:
    """One continuous soxr stream for a job: chunks resampled on their own click at the edges."""

    def __init__(self, from_rate: int, to_rate: int, channels: int) -> None:
        self.passthrough = from_rate == to_rate
        if not self.passthrough:
            self._stream = soxr.ResampleStream(from_rate, to_rate, channels, dtype="float32", quality="HQ")

    def push(self, samples: np.ndarray, *, last: bool = False) -> np.ndarray:
        """Feed `[channels, frames]`; returns what is ready, `[channels, frames_out]`."""
        if self.passthrough:
            return samples
        out = self._stream.resample_chunk(np.ascontiguousarray(samples.T, dtype=np.float32), last=last)
        return np.ascontiguousarray(out.T)
