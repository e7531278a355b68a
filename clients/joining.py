"""A job's audio joined from its chunks, also when a restarted daemon resumes the job (issue 18).

A daemon restarted on the same folder resumes a saved job, and a client still reading the job's
stream hears it again: a MusicGen take from its start, a Jukebox render's final audio decoded
again from its beginning (its checkpoint spares the sampling, not the chunks). Either way the
chunks start again at offset 0, so the audio joined so far is dropped and joined anew.
Only a chunk tells: a second `started` may be the daemon repeating one this client already had.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from protocol.errors import RiffdError
from protocol.messages import Accepted, Chunk, Done, Error, Event

#: The stage of a job's own audio (a Jukebox job's `preview` chunks come before it, and are not).
FINAL_STAGE = "final"


@dataclass(frozen=True)
class Rendered:
    """A finished job's audio, joined from its chunks: float32 `[channels, frames]`."""

    job: str
    audio: np.ndarray
    sample_rate: int
    path: str | None


class ChunkJoiner:
    """The final-stage chunks of one job, checked to be contiguous, joined at the end."""

    def __init__(self) -> None:
        self.blocks: list[np.ndarray] = []  # [channels, frames] each
        self.sample_rate = 0
        self.frames = 0  # frames joined: where the next chunk must start
        self.restarts = 0  # times the job started over (a daemon restarted and resumed it)
        self._accepted = 0  # more than one: a restarted daemon resumed the job (or repeated its accepted)

    def add(self, event: Event) -> bool:
        """Take one of the job's events, joining its final chunks; True if `event` shows the job
        started over (its earlier audio dropped). RiffdError for a chunk out of place."""
        if isinstance(event, Accepted):
            self._accepted += 1
        if not isinstance(event, Chunk) or event.stage != FINAL_STAGE:
            return False
        chunk = event
        restarted = chunk.offset_samples == 0 and self.frames > 0
        if restarted:
            self.blocks.clear()
            self.frames = 0
            self.restarts += 1
        if chunk.offset_samples != self.frames:
            gone = " (the daemon restarted and resumed the job before this client was back)" if self._accepted > 1 else ""
            raise RiffdError(f"chunk {chunk.index} starts at {chunk.offset_samples}, expected {self.frames}: "
                             f"chunks were lost{gone}", code="protocol")
        self.blocks.append(chunk.audio)
        self.sample_rate = chunk.sample_rate
        self.frames += chunk.frames
        return restarted

    def audio(self) -> np.ndarray:
        """The chunks joined, `[channels, frames]` (one silent channel of no frames if none came)."""
        return np.concatenate(self.blocks, axis=1) if self.blocks else np.zeros((1, 0), np.float32)

    def ended(self, event: Event) -> Rendered | None:
        """The job's result if `event` is its `done`; RiffdError if it is its `error`; else None."""
        if isinstance(event, Error):
            raise RiffdError(event.message, code=event.code)
        if isinstance(event, Done):
            return Rendered(event.job, self.audio(), event.sample_rate or self.sample_rate, event.path)
        return None


__all__ = ["FINAL_STAGE", "ChunkJoiner", "Rendered"]
