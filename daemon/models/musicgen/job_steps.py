"""Where a long-form job's decode steps fall: the steps a window takes alone and the ones the next window rides.

A job longer than the model's window runs as windows (longform.py); on riffd's native step each window
after the first rides the last steps of the one before as rows of its own (handoff.py: its context
column c fed at its slot c beside the current window's step), so a job's steps are of two kinds:
a window stepping alone at its positions, and a window stepping late in its positions with the next
window's context rows riding it at theirs (from 0). A step's time grows about linearly with its
cache position (the attention reads the slots so far; the products do not depend on it), so the mean
positions of each kind are where one timed step stands for all of them (`calibration`'s job cost).

torch-free: the plan is arithmetic on `longform.Window`s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from daemon.models.musicgen.longform import Window


@dataclass(frozen=True)
class JobSteps:
    """A job's decode steps by kind, with their mean cache positions."""

    frames: int  # the new frames the job makes
    alone_steps: int  # steps of a window with no other window's rows
    alone_position: float  # their mean cache position
    riding_steps: int  # steps of a window with the next window's context rows riding them
    riding_position: float  # the stepping window's mean cache position in those (0.0 when none)
    context_position: float  # the riding rows' mean cache position (0.0 when none)

    @property
    def steps(self) -> int:
        return self.alone_steps + self.riding_steps


def job_steps(windows: Sequence[Window], delay_steps: int, *, hands_off: bool) -> JobSteps:
    """The steps of a job of `windows` (each window's new frames plus the `delay_steps` of the codebooks'
    delay ramp, at its positions from its context's length on). With `hands_off` (handoff.hands_off:
    riffd's native step), each window's last steps carry the next window's context, one column a step
    (handoff.RIDE_COLUMNS): its `prompt_frames` columns from slot 0 beside the window's steps up to its
    last new frame. Within a step or two of the daemon's own schedule (the next window's BOS column rides
    the window's first step; its last column the step after its frame is made): the mean positions are
    what a timing uses."""
    alone_steps = riding_steps = 0
    alone_sum = riding_sum = context_sum = 0.0
    for window, following in zip(windows, [*windows[1:], None]):
        first, steps = window.prompt_frames, window.new_frames + delay_steps
        total = steps * first + steps * (steps - 1) / 2  # the sum of positions first .. first + steps - 1
        riding = min(following.prompt_frames, window.new_frames) if hands_off and following is not None else 0
        if riding:
            # The context columns 0 .. riding - 1 ride the steps whose positions end at the window's last new frame.
            last = window.prompt_frames + window.new_frames
            riding_total = riding * last - riding * (riding - 1) / 2
            riding_sum += riding_total
            context_sum += riding * (riding - 1) / 2
            total -= riding_total
        riding_steps += riding
        alone_steps += steps - riding
        alone_sum += total
    frames = sum(w.new_frames for w in windows)
    return JobSteps(frames=frames, alone_steps=alone_steps,
                    alone_position=alone_sum / alone_steps if alone_steps else 0.0,
                    riding_steps=riding_steps, riding_position=riding_sum / riding_steps if riding_steps else 0.0,
                    context_position=context_sum / riding_steps if riding_steps else 0.0)
