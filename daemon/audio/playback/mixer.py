"""The body of the audio callback: sum the voices into the device buffer, without locks or allocation.

Kept free of PortAudio so that tests can drive it block by block, as a sound card would.
"""

from __future__ import annotations

import threading

import numpy as np

from daemon.audio.playback.voice import Voice

#: Callbacks longer than this are rendered in pieces so the scratch buffers stay fixed-size.
MAX_BLOCK_FRAMES = 8192


class Mixer:
    """Mixes the current voices into `[frames, channels]` float32 output blocks."""

    def __init__(self, channels: int, *, lead_in_blocks: int = 2) -> None:
        self.channels = channels
        self._scratch = np.zeros((MAX_BLOCK_FRAMES, channels), dtype=np.float32)
        self._ramp = np.arange(1, MAX_BLOCK_FRAMES + 1, dtype=np.float32)
        self._envelope = np.zeros(MAX_BLOCK_FRAMES, dtype=np.float32)
        self._lead_in_left = lead_in_blocks
        # The callback reads this tuple once per block; other threads swap in a new one (under
        # `_edit_lock`, which the callback never takes), so the callback never sees a half edit.
        self._voices: tuple[Voice, ...] = ()
        self._edit_lock = threading.Lock()

    @property
    def voices(self) -> tuple[Voice, ...]:
        return self._voices

    def add(self, voice: Voice) -> None:
        if voice.device_channels != self.channels:
            raise ValueError(f"voice has {voice.device_channels} channels, the mixer {self.channels}")
        with self._edit_lock:
            self._voices = self._voices + (voice,)

    def remove(self, voice: Voice) -> None:
        with self._edit_lock:
            self._voices = tuple(v for v in self._voices if v is not voice)

    def render(self, out: np.ndarray, at_s: float | None = None, rate: int = 0) -> None:
        """Fill `out` `[frames, channels]` with the mix (callback thread only); `out[0]` reaches the
        speakers at `at_s` on the timeline clock (None: unknown), `rate` frames a second later on."""
        out.fill(0.0)
        if self._lead_in_left > 0:
            # PortAudio's JACK host drops the first block of a stream: make it silence.
            self._lead_in_left -= 1
            return
        voices = self._voices
        if not voices:
            return
        frames = out.shape[0]
        for start in range(0, frames, MAX_BLOCK_FRAMES):
            piece = out[start : start + MAX_BLOCK_FRAMES]
            piece_at = None if at_s is None or not rate else at_s + start / rate
            for voice in voices:
                voice.render(piece, self._scratch, self._ramp, self._envelope, piece_at)
        # Layered jobs can sum past full scale; clip here as a sound card would, but predictably.
        np.clip(out, -1.0, 1.0, out=out)
