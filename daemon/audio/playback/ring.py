"""A single-producer/single-consumer ring of audio frames that neither side locks.

The producer (the player's feeder thread) only advances `_written`; the consumer (the audio
callback) only advances `_read`. Each side copies its frames first and publishes the new count
after, so the other side never sees a frame before it is complete. Counts grow without bound
(Python ints), which keeps "full" and "empty" apart without a spare slot. The order of a
side's copy and its count store is the program order, which CPython's GIL makes the order the
other thread sees; a free-threaded interpreter would need explicit barriers here.
"""

from __future__ import annotations

import numpy as np


class FrameRing:
    """A preallocated float32 ring of `capacity_frames` frames of `channels` samples, `[frames, channels]`.

    Frames are interleaved (`[frames, channels]`) because that is the layout of PortAudio's
    output buffer, so the callback copies rows straight out.
    """

    def __init__(self, capacity_frames: int, channels: int) -> None:
        if capacity_frames <= 0 or channels <= 0:
            raise ValueError(f"ring needs a positive size, got {capacity_frames} frames x {channels} channels")
        self.capacity_frames = int(capacity_frames)
        self.channels = int(channels)
        self._data = np.zeros((self.capacity_frames, self.channels), dtype=np.float32)
        self._written = 0  # frames ever written; only the producer stores to it
        self._read = 0  # frames ever read; only the consumer stores to it

    @property
    def readable_frames(self) -> int:
        """Frames the consumer can take now (a lower bound while the producer runs)."""
        return self._written - self._read

    @property
    def writable_frames(self) -> int:
        """Frames the producer can put now (a lower bound while the consumer runs)."""
        return self.capacity_frames - (self._written - self._read)

    def write(self, frames: np.ndarray) -> int:
        """Producer: copy as many rows of `frames` `[n, channels]` as fit; returns how many."""
        written = self._written
        count = min(int(frames.shape[0]), self.capacity_frames - (written - self._read))
        if count <= 0:
            return 0
        start = written % self.capacity_frames
        first = min(count, self.capacity_frames - start)
        self._data[start : start + first] = frames[:first]
        if count > first:
            self._data[: count - first] = frames[first:count]
        self._written = written + count  # publish only after the copy
        return count

    def read_into(self, out: np.ndarray) -> int:
        """Consumer: fill up to `len(out)` rows of `out` `[n, channels]`; returns how many were filled."""
        read = self._read
        count = min(int(out.shape[0]), self._written - read)
        if count <= 0:
            return 0
        start = read % self.capacity_frames
        first = min(count, self.capacity_frames - start)
        out[:first] = self._data[start : start + first]
        if count > first:
            out[first:count] = self._data[: count - first]
        self._read = read + count  # free the slots only after the copy
        return count
