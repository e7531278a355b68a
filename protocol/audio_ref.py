"""Audio a request carries itself: PCM sent beside the header instead of a path on the daemon's disk.

A request field of kind "audio" holds either a path (a string; the only form OSC has) or an
`InlineAudio`. On ZeroMQ an inline value is a JSON object in the header that names a binary
frame after it: `{"buffer": N, "sample_rate": SR, "channels": C, "frames": F, "dtype": "float32"}`,
frame N+1 of the message holding `C * F` little-endian float32 samples, `[channels, frames]`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from protocol.errors import BadAudio

#: Channel counts and rates an inline buffer may claim (what MusicGen and DAWs use, with room).
MAX_INLINE_CHANNELS = 8
INLINE_RATE_RANGE = (1000, 384_000)


@dataclass(frozen=True, eq=False)
class InlineAudio:
    """Samples float32 `[channels, frames]` at `sample_rate` Hz, carried in the request."""

    samples: np.ndarray
    sample_rate: int

    def __post_init__(self) -> None:
        samples = np.asarray(self.samples)
        if samples.ndim == 1:
            samples = samples[None, :]
        if samples.ndim != 2 or not 1 <= samples.shape[0] <= MAX_INLINE_CHANNELS or samples.shape[1] == 0:
            raise BadAudio(f"inline audio must be [channels, frames] with 1-{MAX_INLINE_CHANNELS} channels and "
                           f"at least one frame, got shape {tuple(np.shape(self.samples))}")
        if isinstance(self.sample_rate, bool) or not isinstance(self.sample_rate, (int, np.integer)) or \
                not INLINE_RATE_RANGE[0] <= self.sample_rate <= INLINE_RATE_RANGE[1]:
            raise BadAudio(f"inline audio sample rate must be within {INLINE_RATE_RANGE} Hz, got {self.sample_rate!r}")
        samples = np.ascontiguousarray(samples, dtype=np.float32)
        if not np.isfinite(samples).all():
            raise BadAudio("inline audio contains NaN or infinite samples")
        object.__setattr__(self, "samples", samples)
        object.__setattr__(self, "sample_rate", int(self.sample_rate))

    @property
    def channels(self) -> int:
        return int(self.samples.shape[0])

    @property
    def frames(self) -> int:
        return int(self.samples.shape[1])

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, InlineAudio) and self.sample_rate == other.sample_rate
                and np.array_equal(self.samples, other.samples))

    def __repr__(self) -> str:
        return f"InlineAudio({self.channels} ch, {self.frames} frames, {self.sample_rate} Hz)"


#: What an audio field holds: a path the daemon reads, or the samples themselves.
AudioSource = str | InlineAudio
