"""Audio buffers as they move through riffd: samples with their rate, and streamed chunks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Audio:
    """A whole buffer: `samples` float32 `[channels, frames]` at `sample_rate` Hz."""

    samples: np.ndarray
    sample_rate: int

    @property
    def channels(self) -> int:
        return int(self.samples.shape[0])

    @property
    def frames(self) -> int:
        return int(self.samples.shape[1])

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate


@dataclass(frozen=True)
class AudioChunk:
    """One streamed piece of a job's audio.

    `audio` is float32 `[channels, frames]`; `offset_samples` is where its first frame sits in
    the job's output, so chunks joined in `index` order are contiguous. `stage` is "final"
    (the job's audio) or "preview" (a Jukebox job's early decode of its top-level codes, sent
    first; its own index and offsets from 0; not the job's audio, so not saved or played).
    """

    index: int
    offset_samples: int
    audio: np.ndarray
    sample_rate: int
    stage: str = "final"
    # A take in time: the timeline beat its first sample plays on (see daemon.tempo.take).
    beat: float | None = None

    @property
    def frames(self) -> int:
        return int(self.audio.shape[1])
