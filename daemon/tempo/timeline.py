"""The daemon's beat timeline: beats as a function of time, and the daemon's own one.

Every timeline speaks one clock: `time.clock_gettime(CLOCK_MONOTONIC_RAW)` in seconds, which is
the clock Ableton Link uses on Linux (checked when a Link session opens), so the worker, the audio
callback and Link agree on "now" without asking each other.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from protocol.tempo import DEFAULT_QUANTUM, check_bpm


def now_s() -> float:
    """The timeline clock (Link's on Linux): monotonic, not slewed by NTP."""
    return time.clock_gettime(time.CLOCK_MONOTONIC_RAW)


@dataclass(frozen=True)
class TimelineState:
    """A straight line through (`time_s`, `beat`) with slope `tempo_bpm` / 60 beats per second.

    A timeline's state holds until its tempo changes; every question about a moment is answered
    from one state, so a tempo change between two questions cannot tear an answer.
    """

    tempo_bpm: float
    beat: float
    time_s: float

    @property
    def beat_s(self) -> float:
        return 60.0 / self.tempo_bpm

    def beat_at(self, time_s: float) -> float:
        return self.beat + (time_s - self.time_s) / self.beat_s

    def time_at(self, beat: float) -> float:
        return self.time_s + (beat - self.beat) * self.beat_s

    def phase_at(self, time_s: float, quantum: int = DEFAULT_QUANTUM) -> float:
        """Position within the bar, in beats [0, quantum) (Link's phase)."""
        return math.fmod(self.beat_at(time_s), quantum) % quantum


def next_boundary(beat: float, quantum: float, *, epsilon: float = 1e-9) -> float:
    """The first multiple of `quantum` at or after `beat` (Link's bars are multiples of the quantum from beat 0)."""
    return math.ceil(beat / quantum - epsilon) * quantum


def launch_beat(state: TimelineState, mode: str, at_s: float, quantum: int) -> float:
    """The beat a job launched `mode` ("now", "beat", "bar") sounds from, no earlier than `at_s`."""
    earliest = state.beat_at(at_s)
    if mode == "bar":
        return next_boundary(earliest, quantum)
    if mode == "beat":
        return next_boundary(earliest, 1.0)
    return earliest


class Timeline(Protocol):
    """What the daemon needs of a timeline: its state now, a way to set the tempo, who is there."""

    source: str  # "link" or "own"

    def state(self) -> TimelineState | None:
        """The line now, or None while no tempo is known."""
        ...

    def set_tempo(self, bpm: float) -> None:
        """Change the tempo from now on, the beat continuing where it is."""
        ...

    @property
    def peers(self) -> int: ...


class OwnTimeline:
    """The daemon's timeline without Link: no tempo until a request gives one, beat 0 at the first.

    Thread-safe: requests set the tempo on the event loop while workers and the audio callback read.
    """

    source = "own"

    def __init__(self, bpm: float | None = None, *, clock: Callable[[], float] = now_s) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._state: TimelineState | None = None
        if bpm is not None:
            self.set_tempo(bpm)

    def state(self) -> TimelineState | None:
        return self._state

    def set_tempo(self, bpm: float) -> None:
        check_bpm(bpm)
        with self._lock:
            now = self._clock()
            old = self._state
            if old is not None and old.tempo_bpm == bpm:
                return
            beat = old.beat_at(now) if old is not None else 0.0
            self._state = TimelineState(float(bpm), beat, now)

    @property
    def peers(self) -> int:
        return 0
