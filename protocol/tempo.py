"""Playing in time (issue 15): the tempo fields of a job request, and the clock's requests and event.

A job "in time" is measured in bars instead of seconds, launched on the next beat or bar of the
daemon's timeline (an Ableton Link session with `riffd serve --link`, else the daemon's own
timeline at the tempo a request gave), and its audio conformed to that tempo.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from protocol.errors import InvalidArgument
from protocol.events import Event

#: Beats per bar a request may ask for (Link's quantum; 4 is 4/4).
QUANTUM_RANGE = (1, 16)
DEFAULT_QUANTUM = 4
#: Tempi a request may give, in beats per minute (Link's own range is 20-999).
BPM_RANGE = (20.0, 999.0)
#: When a job's playback starts: at once, on the next beat, or on the next bar.
LAUNCH_MODES = ("now", "beat", "bar")
#: Bars one request may ask for (the daemon's --max-duration-s still bounds the seconds).
MAX_BARS = 1024


def check_bpm(bpm: float | None, name: str = "bpm") -> None:
    lo, hi = BPM_RANGE
    if bpm is not None and not (math.isfinite(bpm) and lo <= bpm <= hi):
        raise InvalidArgument(f"{name} must be within [{lo:g}, {hi:g}] beats per minute, got {bpm}")


@dataclass(frozen=True, kw_only=True)
class InTime:
    """Tempo fields of a job request; any of them set makes the job "in time".

    `bars` replaces `duration_s` (which must then be 0): the length follows the tempo in force when
    the job starts. `bpm` gives the daemon's own timeline its tempo (with Link the session's tempo
    rules; a `tempo` request changes it). `conform` (default: on for a job in time) stretches the
    generated audio to the tempo with its downbeat on the bar; `loop` makes the take exactly `bars`
    bars long with its end flowing into its start, and plays it until cancelled.
    """

    # Length in bars (1-1024) instead of seconds; send duration_s 0 with it.
    bars: int | None = None
    # Beats per bar, 1-16 (absent: 4).
    quantum: int | None = None
    # Tempo of the daemon's own timeline, 20-999 (with --link the session's tempo rules).
    bpm: float | None = None
    # When the audio starts playing: "now", "beat" (the next beat) or "bar" (the next bar).
    launch: str | None = None
    # With bars: a take exactly that long, its end flowing into its start, played until cancelled.
    loop: bool | None = None
    # Stretch the audio to the tempo, its downbeat on the bar (absent: on for a job in time).
    conform: bool | None = None

    @property
    def in_time(self) -> bool:
        """Whether the request uses the timeline at all (else it is a plain take in seconds)."""
        return (self.bars is not None or self.bpm is not None or bool(self.loop) or bool(self.conform)
                or self.launch in ("beat", "bar"))

    @property
    def beats_per_bar(self) -> int:
        return self.quantum if self.quantum is not None else DEFAULT_QUANTUM

    def validate_tempo(self, duration_s: float | None) -> None:
        """InvalidArgument for bad tempo fields; `duration_s` is the request's own (0 with bars)."""
        if self.bars is not None:
            if not 1 <= self.bars <= MAX_BARS:
                raise InvalidArgument(f"bars must be within [1, {MAX_BARS}], got {self.bars}")
            if duration_s is not None and duration_s != 0:
                raise InvalidArgument(f"give bars or a duration_s, not both (send duration_s 0 with bars; got "
                                      f"{duration_s})")
        lo, hi = QUANTUM_RANGE
        if self.quantum is not None and not lo <= self.quantum <= hi:
            raise InvalidArgument(f"quantum (beats per bar) must be within [{lo}, {hi}], got {self.quantum}")
        check_bpm(self.bpm)
        if self.launch is not None and self.launch not in LAUNCH_MODES:
            raise InvalidArgument(f"launch must be one of {', '.join(LAUNCH_MODES)}, got {self.launch!r}")
        if self.loop and self.bars is None:
            raise InvalidArgument("loop needs bars (a loop is a whole number of bars)")


@dataclass(frozen=True)
class Clock(Event):
    """The daemon's timeline now: `source` is "link" (an Ableton Link session), "own" (the daemon's
    timeline at a request's tempo) or "none" (no tempo yet: `tempo` is 0).

    `beat` counts from the timeline's origin; `phase` is the position within the bar (0 to
    `quantum`); `peers` the other Link peers in the session.
    """

    TYPE: ClassVar[str] = "clock"
    OSC_FORMS: ClassVar[tuple[tuple[str, ...], ...]] = (("source", "tempo", "beat", "phase", "peers", "quantum"),)

    source: str
    tempo: float
    beat: float
    phase: float
    peers: int = 0
    quantum: int = DEFAULT_QUANTUM


__all__ = ["BPM_RANGE", "Clock", "DEFAULT_QUANTUM", "InTime", "LAUNCH_MODES", "MAX_BARS", "QUANTUM_RANGE", "check_bpm"]
