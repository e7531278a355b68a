"""An Ableton Link session as the daemon's timeline, through aalink (a maintained binding on PyPI).

aalink runs in the daemon's asyncio loop (its callbacks arrive there); the session state it wraps
is thread-safe, so workers and the audio callback read the line through `state()` directly.

riffd joins as a follower: it never commits a tempo unless a `tempo` request asks. Two details
keep that true:
- Link is created at the tempo riffd would found a session with, and enabled only after a pause:
  a peer enabled right after it is made can, now and then, reset the session to its own initial
  tempo (aalink issue 7, Link issue 146; measured here: 1 join in 15 without the pause, 0 in 55
  with it).
- Nothing here writes the session state except `set_tempo`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from daemon.tempo.extra import LINK_MODULES, missing, needs_extra
from daemon.tempo.timeline import TimelineState, now_s
from protocol.errors import RiffdError
from protocol.tempo import DEFAULT_QUANTUM, check_bpm

log = logging.getLogger(__name__)

#: Pause between making the Link object and enabling it (see the module docstring).
ENABLE_DELAY_S = 1.0
#: The tempo riffd founds a session with when it is the first peer.
FOUNDING_BPM = 120.0


class LinkUnavailable(RiffdError):
    """aalink (riffd's tempo extra) is not installed or cannot load: `riffd serve --link` cannot join a session."""

    code = "link_unavailable"


class LinkTimeline:
    """A Link session: `await open()` on the daemon's loop, then read `state()` from any thread."""

    source = "link"

    def __init__(self, *, founding_bpm: float = FOUNDING_BPM, enable_delay_s: float = ENABLE_DELAY_S,
                 quantum: int = DEFAULT_QUANTUM) -> None:
        # Refused here, before the models load (minutes, for big ones), rather than when Link opens.
        absent = missing(LINK_MODULES)
        if absent:
            raise LinkUnavailable(needs_extra("--link (Ableton Link)", absent))
        self._founding_bpm = founding_bpm
        self._quantum = quantum
        self._enable_delay_s = enable_delay_s
        self._link: Any = None  # aalink.Link once open (aalink ships no types)
        self._listeners: list[Callable[[float], None]] = []

    async def open(self) -> None:
        try:
            from aalink import Link
        except ImportError as exc:
            raise LinkUnavailable(f"{needs_extra('--link (Ableton Link)', LINK_MODULES)} ({exc})") from None
        self._link = Link(self._founding_bpm, asyncio.get_running_loop())
        # Link aligns peers' phase modulo the quantum each asks with: bars of 4 beats, as Live's
        # and Bitwig's default, so that a bar here is a bar there.
        self._link.quantum = self._quantum
        _check_clock(self._link)
        await asyncio.sleep(self._enable_delay_s)
        self._link.set_tempo_callback(self._tempo_changed)
        self._link.set_num_peers_callback(self._peers_changed)
        self._link.enabled = True
        log.info("Link enabled (a session's tempo is followed; riffd changes it only when a request asks)")

    def close(self) -> None:
        if self._link is not None:
            self._link.enabled = False
            self._link = None

    def add_tempo_listener(self, listener: Callable[[float], None]) -> None:
        """`listener(bpm)` on the loop whenever any peer changes the session tempo."""
        self._listeners.append(listener)

    def state(self) -> TimelineState | None:
        link = self._link
        if link is None:
            return None
        # Beat, then tempo, then the clock: microseconds apart; the tempo is read last so that a
        # change in between gives at worst a line through the right beat at the new slope.
        beat = link.beat
        at = _seconds(link.time)
        return TimelineState(float(link.tempo), float(beat), at)

    def set_tempo(self, bpm: float) -> None:
        check_bpm(bpm)
        if self._link is None:
            raise LinkUnavailable("the Link session is not open")
        log.info("setting the Link session tempo to %.2f BPM (asked by a request)", bpm)
        self._link.tempo = float(bpm)

    @property
    def peers(self) -> int:
        return int(self._link.num_peers) if self._link is not None else 0

    def _tempo_changed(self, bpm: float) -> None:
        log.info("Link session tempo is now %.2f BPM", bpm)
        for listener in self._listeners:
            listener(bpm)

    def _peers_changed(self, peers: int) -> None:
        log.info("Link session: %d other peer%s", peers, "" if peers == 1 else "s")


def _seconds(value: object) -> float:
    """aalink's `time` (microseconds of Link's clock, a timedelta) in seconds."""
    total = getattr(value, "total_seconds", None)
    return float(total()) if total is not None else float(value) / 1e6  # type: ignore[arg-type]


def _check_clock(link: object) -> None:
    """Link's clock must be the timeline clock (CLOCK_MONOTONIC_RAW on Linux): warn loudly if not."""
    before = now_s()
    link_s = _seconds(link.time)  # type: ignore[attr-defined]
    after = now_s()
    if not before - 0.01 <= link_s <= after + 0.01:
        log.warning("Link's clock differs from CLOCK_MONOTONIC_RAW by %.3f s: launch times will be off",
                    link_s - (before + after) / 2)


__all__ = ["LinkTimeline", "LinkUnavailable"]
