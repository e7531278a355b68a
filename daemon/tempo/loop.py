"""A seamless loop: exactly N bars whose end flows into its start.

The take is generated past the loop's end; that continuation (what the music did next) is
crossfaded, with an equal-power curve, into the loop's first `overlap` samples. Played in a
circle, the sample after the loop's last is then (nearly) the one the music itself had there, so
the seam is as smooth as any other point of the take. The start stays on the downbeat: the
continuation begins on a downbeat too, since the loop is whole bars.
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)


def seamless_loop(audio: np.ndarray, frames: int, overlap: int) -> np.ndarray:
    """`frames` samples of `audio` `[channels, >= frames + overlap]` that loop without a seam."""
    channels, have = audio.shape
    if have < frames:
        log.warning("loop: the take is %d samples short of its bars; it repeats from its start to fill them",
                    frames - have)
        # as many whole repeats as it takes (a take under half its bars needs more than one)
        audio = np.tile(audio, (1, -(-frames // have)))[:, :frames] if have else np.zeros((channels, frames), np.float32)
        have = frames
    overlap = max(0, min(overlap, have - frames, frames))
    out = np.array(audio[:, :frames], dtype=np.float32, copy=True)
    if overlap:
        rise = np.sin(np.linspace(0.0, np.pi / 2, overlap, dtype=np.float64)) ** 2
        fade_in = np.sqrt(rise).astype(np.float32)  # equal power: uncorrelated material keeps its level
        fade_out = np.sqrt(1.0 - rise).astype(np.float32)
        out[:, :overlap] = fade_in * out[:, :overlap] + fade_out * audio[:, frames : frames + overlap]
    else:
        log.warning("loop: nothing generated past the loop's end to smooth its seam with")
    return out
