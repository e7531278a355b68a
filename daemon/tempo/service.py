"""The daemon's tempo: one timeline, and what requests and jobs in time ask of it.

The request handler checks jobs against it and answers `clock` and `tempo`; the runner plans
each take in time when its job starts and shapes the backend's audio with that plan.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from daemon.audio.types import AudioChunk
from daemon.tempo.extra import conform_missing, needs_extra
from daemon.tempo.jam import jam_in_time
from daemon.tempo.positions import PositionMap
from daemon.tempo.take import TakePlan, TakeState, shape
from daemon.tempo.timeline import OwnTimeline, Timeline, now_s
from daemon.tempo.warmup import WARMUP, ConformWarmup
from protocol.errors import InvalidArgument, Unsupported
from protocol.tempo import DEFAULT_QUANTUM, Clock, InTime

log = logging.getLogger(__name__)

#: How far ahead of "now" a take's launch is placed beyond the playback buffer (the feeder and
#: the device's output latency need the audio before it is due).
LAUNCH_MARGIN_S = 0.25


class TempoService:
    """The timeline plus the daemon's tempo settings; safe to use from the loop and the workers."""

    def __init__(self, timeline: Timeline | None = None, *, prompt_template: str = "{bpm} bpm",
                 play_buffer_s: float = 0.5, warmup: ConformWarmup = WARMUP) -> None:
        self.timeline: Timeline = timeline if timeline is not None else OwnTimeline()
        self.warmup = warmup
        self.prompt_template = prompt_template
        self.lead_s = play_buffer_s + LAUNCH_MARGIN_S

    # -- the event loop -------------------------------------------------------------------------

    def check_request(self, request: InTime) -> None:
        """At submit: a request in time needs a tempo, its own or the timeline's; own timelines take it."""
        if not request.in_time:
            return
        if request.conform is not False:
            absent = conform_missing()
            if absent:
                raise Unsupported(f"{needs_extra('conform', absent)}; or send conform 0 to keep the take at "
                                  "its own tempo")
            # A daemon that had no tempo at start warms up now, while this take is generated.
            self.warmup.start()
        if request.bpm is not None:
            if self.timeline.source == "own":
                self.timeline.set_tempo(request.bpm)
            else:
                state = self.timeline.state()
                if state is not None and abs(state.tempo_bpm - request.bpm) > 1e-6:
                    log.info("request bpm %.2f: the Link session's %.2f BPM rules (a tempo request changes it)",
                             request.bpm, state.tempo_bpm)
        if self.timeline.state() is None:
            what = "launch " + request.launch if request.launch in ("beat", "bar") else "a job in time"
            raise InvalidArgument(f"{what} needs a tempo: give bpm, send /riffd/tempo first, or join a Link "
                                  "session (riffd serve --link)")

    def warm_conform(self) -> bool:
        """Start conform's warm-up (once per process); False when conform is not installed."""
        if conform_missing():
            return False
        self.warmup.start()
        return True

    def clock(self, quantum: int = DEFAULT_QUANTUM, request_id: str | None = None) -> Clock:
        state = self.timeline.state()
        peers = self.timeline.peers
        if state is None:
            return Clock(source="none", tempo=0.0, beat=0.0, phase=0.0, peers=peers, quantum=quantum, re=request_id)
        now = now_s()
        return Clock(source=self.timeline.source, tempo=round(state.tempo_bpm, 6), beat=round(state.beat_at(now), 6),
                     phase=round(state.phase_at(now, quantum), 6), peers=peers, quantum=quantum, re=request_id)

    def set_tempo(self, bpm: float) -> None:
        self.timeline.set_tempo(bpm)

    # -- the worker -----------------------------------------------------------------------------

    def plan(self, request: InTime) -> TakePlan | None:
        """The take's plan at the tempo in force now (the job is starting), or None if not in time."""
        if not request.in_time:
            return None
        state = self.timeline.state()
        if state is None:
            raise InvalidArgument("the job is in time, but the daemon's timeline has no tempo")
        return TakePlan(bpm=state.tempo_bpm, quantum=request.beats_per_bar, bars=request.bars,
                        launch=request.launch or "now", loop=bool(request.loop),
                        conform=request.conform if request.conform is not None else True)

    def shape(self, chunks: Iterator[AudioChunk], take: TakeState) -> Iterator[AudioChunk]:
        return shape(chunks, take, state=self.timeline.state, now_s=now_s, lead_s=self.lead_s)

    def shape_jam(self, chunks: Iterator[AudioChunk], take: TakeState, positions: PositionMap) -> Iterator[AudioChunk]:
        """A jam's chunks in time (daemon/tempo/jam.py). Its beat tracking waits for conform's warm-up
        (started here if it was not), so the jam plays on at its own tempo instead of stalling; a
        failed warm-up (logged) leaves it at its own tempo."""
        if take.plan.conform:
            self.warmup.start()
        return jam_in_time(chunks, take, state=self.timeline.state, now_s=now_s, lead_s=self.lead_s,
                           positions=positions, ready=lambda: self.warmup.wait(0) and self.warmup.error is None)
