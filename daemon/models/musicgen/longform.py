"""Generation longer than the model's window, as audiocraft's `extend_stride` does it: each new
window starts from the last (window - stride) frames of everything so far.
"""

from __future__ import annotations

from dataclasses import dataclass

from daemon.models.musicgen.delay import delay_steps
from daemon.models.musicgen.loader import MusicgenBundle
from protocol.errors import InvalidArgument


@dataclass(frozen=True)
class Window:
    """One pass of the model: `prompt_frames` of context continued by `new_frames`."""

    index: int
    prompt_frames: int
    new_frames: int
    # Where the window's first (prompt) frame sits relative to the start of the new audio.
    start_frame: int


def plan_windows(new_frames: int, prompt_frames: int, window_frames: int, stride_frames: int) -> list[Window]:
    """Windows covering `new_frames` after a prompt of `prompt_frames`."""
    if new_frames <= 0:
        raise InvalidArgument("nothing to generate: the duration is shorter than one frame")
    if prompt_frames >= window_frames:
        raise InvalidArgument(f"the audio prompt ({prompt_frames} frames) does not fit the model window ({window_frames} frames)")
    if not 0 < stride_frames < window_frames:
        raise InvalidArgument(f"extend stride must be between 0 and the window ({window_frames} frames), got {stride_frames}")
    windows: list[Window] = []
    done, context = 0, prompt_frames
    while done < new_frames:
        new = min(window_frames - context, new_frames - done)
        windows.append(Window(len(windows), context, new, done - context))
        done += new
        # The next window keeps the last (window - stride) frames of this one's whole sequence.
        context = min(window_frames - stride_frames, context + new)
    return windows


def stride_frames(extend_stride_s: float, bundle: MusicgenBundle) -> int:
    """The frames a later window advances by for `extend_stride_s`, at most the window less one (a
    stride past a small model's window is its longest; the default 18 s is past debug presets')."""
    frames = int(extend_stride_s * bundle.frame_rate)
    if frames < 1:
        raise InvalidArgument(f"extend_stride_s must be at least one codec frame ({1 / bundle.frame_rate:g} s), "
                              f"got {extend_stride_s:g}")
    return min(frames, bundle.window_frames - 1)


def steps_for(windows: list[Window], bundle: MusicgenBundle) -> int:
    """Decoder steps a render takes: each window pays its frames plus the delay ramp."""
    extra = delay_steps(bundle.num_codebooks, bundle.audio_channels)
    return sum(w.new_frames + extra for w in windows)
