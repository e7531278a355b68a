"""Conform an endless stream (a jam) to the timeline as it plays: no gaps, its beats steered onto the grid.

Rubber Band's real-time stretcher (pylibrb, R3 "finer" engine) takes the stream block by block at
a time ratio set before each block. librosa's beat tracker reads the last few seconds of the
input now and then (`TRACK_EVERY_S`) and gives the input's beat period and beat positions; the
first confident reading also fixes which input beat is the "one" (the downbeat), and later beats
are counted from it, so a re-reading cannot move the bar. Before each block the ratio is chosen
so that the input's next bar line lands on the timeline's next bar line: the ratio is the one
the tempi give (input period / grid period, in output per input), corrected for the phase error,
which it takes up over the bar, within `MAX_CORRECTION` of the plain ratio (beyond that the
stretch is heard). Until the first reading (the tracker needs `MIN_HISTORY_S` of audio) the
stream plays at its own tempo, which the prompt already named.

What comes out is placed on the output timeline: sample n plays `n / rate` seconds after the
launch, and its beat is the timeline's at that moment (a tempo change on the timeline moves the
grid the ratio aims at from then on).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from daemon.audio.types import AudioChunk
from daemon.tempo.positions import PositionMap
from daemon.tempo.timeline import TimelineState

log = logging.getLogger(__name__)

#: Seconds of input the tracker reads each time (enough beats for a steady fit at 60 BPM and up).
HISTORY_S = 8.0
#: The first reading waits for this much input.
MIN_HISTORY_S = 4.0
#: Input seconds between two readings.
TRACK_EVERY_S = 4.0
#: How far (relative) the ratio may stray from the tempi's ratio to catch up the phase.
MAX_CORRECTION = 0.06
#: Input frames handed to Rubber Band per call.
BLOCK_FRAMES = 1024
#: Pushes over which the stretcher's fill is taken (a median: it moves by whole hops), and the
#: drift (output samples) below which it is left alone.
DRIFT_WINDOW = 12
DRIFT_STEP = 16.0


@dataclass
class InputGrid:
    """The input's beats: a line through absolute input positions (samples), the downbeat's index."""

    period: float  # input samples per beat
    origin: float  # input position of beat 0 (a downbeat)



class StreamConformer:
    """One stream's conform: `push(chunk)` gives the conformed audio that is ready (maybe none).

    `ready()` false (conform's one-off warm-up still compiling) defers the beat tracking, so that
    the stream never waits for it: until then it plays on at its own tempo.
    """

    def __init__(self, sample_rate: int, channels: int, *, state: Callable[[], TimelineState | None],
                 launch_s: float, quantum: int, prompt_bpm: float, positions: PositionMap | None = None,
                 ready: Callable[[], bool] = lambda: True) -> None:
        import pylibrb

        self.positions = positions if positions is not None else PositionMap()
        self._ready = ready
        self.rate = sample_rate
        self.channels = channels
        self._state = state
        self._launch_s = launch_s  # when output sample 0 plays, on the timeline clock
        self.quantum = quantum
        self._prompt_bpm = prompt_bpm  # what the stream was asked to play: the tracker's prior
        options = pylibrb.Option.PROCESS_REALTIME | pylibrb.Option.ENGINE_FINER
        self._rb = pylibrb.RubberBandStretcher(sample_rate=sample_rate, channels=channels, options=options)
        self._rb.set_max_process_size(BLOCK_FRAMES)
        self._discard = int(self._rb.get_start_delay())
        pad = int(self._rb.get_preferred_start_pad())
        if pad:
            self._rb.process(np.zeros((channels, pad), np.float32))
        self._history = np.zeros((channels, 0), np.float32)
        self._history_start = 0  # input position of history[0]
        self.in_pos = 0  # input samples taken
        self._mapped_out = 0.0  # output position (samples) input position `in_pos` maps to
        self.out_pos = 0  # output samples given out
        self.grid: InputGrid | None = None
        self._pending: InputGrid | None = None  # a reading that disagreed with the grid, to be confirmed
        self._tracked_at = -math.inf
        self.ratio = 1.0
        self._held: list[float] = []  # per push: input samples inside the stretcher
        self._latency_in: float | None = None

    # -- the stream ----------------------------------------------------------------------------

    def push(self, audio: np.ndarray) -> np.ndarray:
        """Take `[channels, frames]` of input; return the conformed output ready now."""
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        self._remember(audio)
        out = []
        for start in range(0, audio.shape[1], BLOCK_FRAMES):
            block = audio[:, start : start + BLOCK_FRAMES]
            self.ratio = self._ratio_for(block.shape[1])
            self._rb.time_ratio = self.ratio
            self._rb.process(block)
            self.in_pos += block.shape[1]
            self._mapped_out += block.shape[1] * self.ratio
            self.positions.add(self.in_pos, self._mapped_out, self.ratio)
            out.append(self._retrieve())
        self._correct_drift()
        return np.concatenate(out, axis=1) if out else np.zeros((self.channels, 0), np.float32)

    def finish(self) -> np.ndarray:
        """The end of the stream: what the stretcher still holds, up to where the input's end maps."""
        self._rb.process(np.zeros((self.channels, 0), np.float32), final=True)
        out = []
        while self._rb.available() > 0:
            out.append(self._retrieve())
        tail = np.concatenate(out, axis=1) if out else np.zeros((self.channels, 0), np.float32)
        # Rubber Band pads its last hop: keep what the input maps to, no more.
        keep = max(0, round(self._mapped_out) - (self.out_pos - tail.shape[1]))
        self.out_pos -= max(0, tail.shape[1] - keep)
        return tail[:, :keep]

    def _correct_drift(self) -> None:
        """Keep `_mapped_out` to what Rubber Band really gives: in real-time mode its output falls
        behind input x ratio by about 0.1 % (measured here: 19 ms in 30 s at x1.025), so the
        output it has given plus what it holds (its latency, constant in input samples) is the truth."""
        held_in = (self._mapped_out - self.out_pos) / self.ratio  # input samples inside the stretcher
        self._held.append(held_in)
        if len(self._held) < DRIFT_WINDOW:
            return
        recent = float(np.median(self._held[-DRIFT_WINDOW:]))
        if self._latency_in is None:
            self._latency_in = recent  # the stretcher's latency, read once it has settled
            return
        drift_out = (recent - self._latency_in) * self.ratio
        if abs(drift_out) > DRIFT_STEP:
            self._mapped_out -= drift_out
            self._held = [h - drift_out / self.ratio for h in self._held[-DRIFT_WINDOW:]]

    def _retrieve(self) -> np.ndarray:
        got = self._rb.retrieve_available() if self._rb.available() > 0 else np.zeros((self.channels, 0), np.float32)
        if self._discard and got.shape[1]:
            drop = min(self._discard, got.shape[1])
            got, self._discard = got[:, drop:], self._discard - drop
        self.out_pos += got.shape[1]
        return got

    def _remember(self, audio: np.ndarray) -> None:
        self._history = np.concatenate([self._history, audio], axis=1)
        keep = int(HISTORY_S * self.rate)
        if self._history.shape[1] > keep:
            cut = self._history.shape[1] - keep
            self._history, self._history_start = self._history[:, cut:], self._history_start + cut
        end = self._history_start + self._history.shape[1]
        due = self._history.shape[1] >= MIN_HISTORY_S * self.rate and end - self._tracked_at >= TRACK_EVERY_S * self.rate
        if due and self._ready():
            self._tracked_at = end
            self._track()

    def _track(self) -> None:
        from daemon.tempo.beat_process import BEATS

        known = None if self.grid is None else 60.0 * self.rate / self.grid.period
        # In the beat tracker's child process: librosa's work never holds the GIL the jam's decode needs.
        found = BEATS.track(self._history, self.rate, known or self._prompt_bpm, self.quantum, known_bpm=known)
        if not found.confident:
            log.debug("stream conform: no steady beat in the last %.1f s; keeping the last reading",
                      self._history.shape[1] / self.rate)
            return
        beats = self._history_start + found.beat_times_s * self.rate
        # A line through the window's beats that a few misplaced ones do not tilt (Theil-Sen: the
        # median of the slopes between every two beats): its slope is the period, its middle the phase.
        index = np.arange(beats.size)
        i, j = np.triu_indices(beats.size, k=1)
        period = float(np.median((beats[j] - beats[i]) / (j - i)))
        middle = beats.size // 2
        anchor = float(middle * period + np.median(beats - index * period))
        if self.grid is None:
            origin = anchor + (found.downbeat_index - middle) * period
            log.info("stream conform: %.2f BPM found, downbeat at input %.3f s", 60.0 * self.rate / period,
                     origin / self.rate)
            self.grid = InputGrid(period, origin)
            return
        # The bar stays where the first reading put it: the middle beat keeps its old count.
        count = round((anchor - self.grid.origin) / self.grid.period)
        reading = InputGrid(period, anchor - count * period)
        # The tracker now and then wanders off the attacks for part of a window: a reading far
        # from the grid in force is taken only when the next one agrees with it.
        if _agree(reading, self.grid, anchor, self.rate) or (
                self._pending is not None and _agree(reading, self._pending, anchor, self.rate)):
            self.grid, self._pending = reading, None
        else:
            log.debug("stream conform: a reading %.2f BPM off the grid in force kept for the next to confirm",
                      60.0 * self.rate * (1 / reading.period - 1 / self.grid.period))
            self._pending = reading

    # -- the steering -----------------------------------------------------------------------------

    def _ratio_for(self, frames: int) -> float:
        """The ratio for the next `frames` of input: the input's next bar line a bar or more ahead
        steered onto the grid bar line nearest where it would land at the tempi's ratio."""
        state = self._state()
        grid = self.grid
        if state is None or grid is None:
            return self.ratio
        plain = state.beat_s * self.rate / grid.period  # output samples per input sample, tempo for tempo
        first = math.ceil((self.in_pos + frames + self.quantum * grid.period - grid.origin) / grid.period)
        target_in = grid.origin + math.ceil(first / self.quantum) * self.quantum * grid.period
        out_at = self._mapped_out + (target_in - self.in_pos) * plain
        beat_at = state.beat_at(self._launch_s + out_at / self.rate)
        grid_bar = round(beat_at / self.quantum) * self.quantum
        target_out = (state.time_at(grid_bar) - self._launch_s) * self.rate
        ratio = (target_out - self._mapped_out) / (target_in - self.in_pos)
        return float(np.clip(ratio, plain * (1 - MAX_CORRECTION), plain * (1 + MAX_CORRECTION)))

    def beat_of_output(self, out_position: int) -> float | None:
        state = self._state()
        return None if state is None else state.beat_at(self._launch_s + out_position / self.rate)


#: Two readings agree when their tempi are within this fraction and their beats within this long.
AGREE_TEMPO = 0.005
AGREE_S = 0.02


def _agree(a: InputGrid, b: InputGrid, at: float, rate: int) -> bool:
    """Whether two readings of the input's beats agree near input position `at`."""
    if abs(a.period / b.period - 1) > AGREE_TEMPO:
        return False
    offset = ((a.origin - b.origin) / b.period + 0.5) % 1 - 0.5  # beats, nearest
    drift = (at - a.origin) * (1 - b.period / a.period) / b.period  # the slopes' difference by `at`
    return abs(offset + drift) * b.period < AGREE_S * rate


def conform_stream(chunks: Iterator[AudioChunk], conformer: StreamConformer) -> Iterator[AudioChunk]:
    """The stream's chunks conformed, renumbered from 0 on the output's own count, each with its beat;
    when the stream ends, the stretcher's last samples too."""
    index, sample_rate = 0, conformer.rate
    for chunk in chunks:
        if chunk.stage != "final":
            continue
        start = conformer.out_pos
        audio = conformer.push(chunk.audio)
        if audio.shape[1]:
            yield AudioChunk(index, start, audio, chunk.sample_rate, beat=conformer.beat_of_output(start))
            index += 1
    start = conformer.out_pos
    tail = conformer.finish()
    if tail.shape[1]:
        yield AudioChunk(index, start, tail, sample_rate, beat=conformer.beat_of_output(start))
