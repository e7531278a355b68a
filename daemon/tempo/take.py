"""A take in time: its plan (tempo, bars, launch) and the shaping of the backend's audio to it.

A take in bars is generated a little longer than asked (conform trims to the first downbeat and
the tempo MusicGen plays rarely matches the prompt exactly), then conformed, cut to exactly its
bars (or made a seamless loop of them), and handed on as chunks carrying the beat each starts on.
A take with neither conform nor loop streams as it is decoded.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from daemon.audio.types import AudioChunk
from daemon.tempo.extra import CONFORM_MODULES, needs_extra
from daemon.tempo.timeline import TimelineState, launch_beat
from protocol.errors import Unsupported

log = logging.getLogger(__name__)

#: Extra generated length when conforming: MusicGen follows a prompt's tempo to about ±5 BPM
#: (audiocraft issue 20), so 12 % covers a stretch of up to 1.12 plus a bar of pre-roll.
CONFORM_MARGIN = 0.12
#: Shaped takes go out in chunks of this long (the backend's own chunks when streaming).
CHUNK_S = 0.5
#: A take's end fades out over this long when it is cut (a cut mid-note clicks).
END_FADE_S = 0.004


@dataclass(frozen=True)
class TakePlan:
    """What a request in time asks for, with the tempo in force when its job starts."""

    bpm: float
    quantum: int
    bars: int | None
    launch: str  # "now", "beat" or "bar"
    loop: bool
    conform: bool

    @property
    def beat_s(self) -> float:
        return 60.0 / self.bpm

    @property
    def bar_s(self) -> float:
        return self.quantum * self.beat_s

    def frames(self, sample_rate: int) -> int | None:
        """Exactly `bars` bars of samples (None for a take in seconds)."""
        return None if self.bars is None else int(round(self.bars * self.bar_s * sample_rate))

    def loop_overlap_s(self) -> float:
        """How much of the continuation past the loop's end is crossfaded into its start."""
        return min(max(self.beat_s / 4, 0.02), 0.15)

    def generate_s(self, duration_s: float) -> float:
        """Seconds to ask the backend for, so that shaping has what it cuts."""
        wanted = duration_s if self.bars is None else self.bars * self.bar_s
        if self.loop:
            wanted += self.loop_overlap_s()
        if self.conform:
            wanted = (wanted + self.bar_s) * (1 + CONFORM_MARGIN)
        return wanted + 0.05

    def prompt(self, text: str | None, template: str) -> str | None:
        """The text prompt with the tempo appended (`template` e.g. "{bpm} bpm"; empty: unchanged)."""
        if not template:
            return text
        bpm = f"{self.bpm:.0f}" if abs(self.bpm - round(self.bpm)) < 0.05 else f"{self.bpm:.1f}"
        tempo = template.format(bpm=bpm)
        return f"{text}, {tempo}" if text else tempo


@dataclass
class TakeState:
    """What the runner reports of a take in time: its plan, the beat it launches on, its length."""

    plan: TakePlan
    launch_beat: float | None = None
    frames: int = 0
    sample_rate: int = 0
    source_bpm: float | None = None

    def beats(self) -> float:
        return self.frames / self.sample_rate / self.plan.beat_s if self.sample_rate else 0.0

    def done_fields(self) -> dict[str, float]:
        beats = self.beats()
        fields = {"beats": round(beats, 6), "bars": round(beats / self.plan.quantum, 6), "bpm": self.plan.bpm}
        if self.launch_beat is not None:
            fields["beat"] = round(self.launch_beat, 6)
        return fields


def shape(chunks: Iterator[AudioChunk], take: TakeState, *, state: Callable[[], TimelineState | None],
          now_s: Callable[[], float], lead_s: float) -> Iterator[AudioChunk]:
    """The take's chunks in time: conformed / looped / cut to its bars, each stamped with its beat.

    The launch beat is chosen when the first shaped chunk is ready: the next beat or bar (per the
    plan) at least `lead_s` from now, so playback has the audio before it is due.
    """
    plan = take.plan
    if not (plan.conform or plan.loop):
        yield from _stream_cut(chunks, take, state=state, now_s=now_s, lead_s=lead_s)
        return
    blocks, sample_rate = [], 0
    for chunk in chunks:
        if chunk.stage == "final":
            blocks.append(chunk.audio)
            sample_rate = chunk.sample_rate
    if not blocks:
        return
    audio = np.concatenate(blocks, axis=1).astype(np.float32, copy=False)
    frames = plan.frames(sample_rate)
    overlap = int(round(plan.loop_overlap_s() * sample_rate)) if plan.loop else 0
    if plan.conform:
        try:
            from daemon.tempo.conform import conform

            conformed = conform(audio, sample_rate, plan.bpm, plan.quantum)
        except ImportError as exc:  # checked at submit; a library that is there but cannot load
            raise Unsupported(f"{needs_extra('conform', CONFORM_MODULES)} ({exc})") from None
        # The take was generated long enough for a tempo within CONFORM_MARGIN of the plan's; a grid
        # found much slower leaves too little on it, and its bars are better whole at the take's own
        # time than filled with silence or repeats.
        short_by = (frames or 0) + overlap - conformed.samples.shape[1]
        if short_by <= 0:
            audio, take.source_bpm = conformed.samples, conformed.source_bpm
        else:
            log.warning("conform: on the grid (%.2f BPM found) the take is %d samples short of its bars; it is "
                        "left at its own time", conformed.source_bpm, short_by)
    if plan.loop:
        from daemon.tempo.loop import seamless_loop

        assert frames is not None  # validated: a loop has bars
        audio = seamless_loop(audio, frames, overlap)
    elif frames is not None:
        audio = _cut(audio, frames, sample_rate)
    take.sample_rate = sample_rate
    take.frames = audio.shape[1]
    take.launch_beat = _launch(plan, state, now_s, lead_s)
    step = max(1, int(CHUNK_S * sample_rate))
    for index, start in enumerate(range(0, audio.shape[1], step)):
        yield AudioChunk(index, start, audio[:, start : start + step], sample_rate,
                         beat=_beat_of(take, start, sample_rate))


def _stream_cut(chunks: Iterator[AudioChunk], take: TakeState, *, state: Callable[[], TimelineState | None],
                now_s: Callable[[], float], lead_s: float) -> Iterator[AudioChunk]:
    """Stream as decoded, cut (or padded) to exactly the take's bars when it has them."""
    plan = take.plan
    sent, index = 0, 0
    limit: int | None = None
    for chunk in chunks:
        if chunk.stage != "final":
            yield chunk
            continue
        if take.launch_beat is None:
            take.sample_rate = chunk.sample_rate
            take.launch_beat = _launch(plan, state, now_s, lead_s)
            limit = plan.frames(chunk.sample_rate)
        audio = chunk.audio
        if limit is not None:
            audio = audio[:, : max(0, limit - sent)]
            if sent + audio.shape[1] == limit:
                audio = _fade_end(audio.copy(), chunk.sample_rate)
        if audio.shape[1]:
            yield AudioChunk(index, sent, audio, chunk.sample_rate, beat=_beat_of(take, sent, chunk.sample_rate))
            index += 1
            sent += audio.shape[1]
    if limit is not None and sent < limit:
        log.warning("take ended %d samples short of its %s bars: padded with silence", limit - sent, plan.bars)
        pad = np.zeros((1 if not index else audio.shape[0], limit - sent), np.float32)
        yield AudioChunk(index, sent, pad, take.sample_rate, beat=_beat_of(take, sent, take.sample_rate))
        sent = limit
    take.frames = sent


def _launch(plan: TakePlan, state: Callable[[], TimelineState | None], now_s: Callable[[], float],
            lead_s: float) -> float | None:
    line = state()
    if line is None:
        return None
    return launch_beat(line, plan.launch, now_s() + lead_s, plan.quantum)


def _beat_of(take: TakeState, offset_samples: int, sample_rate: int) -> float | None:
    if take.launch_beat is None:
        return None
    return take.launch_beat + offset_samples / sample_rate / take.plan.beat_s


def _cut(audio: np.ndarray, frames: int, sample_rate: int) -> np.ndarray:
    """Exactly `frames` samples: the end faded if cut, silence added if short."""
    if audio.shape[1] >= frames:
        return _fade_end(np.ascontiguousarray(audio[:, :frames]), sample_rate)
    log.warning("take is %d samples short of its bars: padded with silence", frames - audio.shape[1])
    return np.concatenate([audio, np.zeros((audio.shape[0], frames - audio.shape[1]), np.float32)], axis=1)


def _fade_end(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    fade = min(audio.shape[1], max(1, int(math.ceil(END_FADE_S * sample_rate))))
    audio[:, -fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    return audio
