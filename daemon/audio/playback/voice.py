"""One job's path to the sound card: a continuous resampler, a jitter buffer and an envelope.

Three threads touch a voice, each through its own fields, and none of them waits on another:
- the job's thread calls `push`, `finish`, `cancel` and `set_gain` (a deque append, flag stores);
- the player's feeder thread calls `feed`: it resamples what was pushed to the device rate
  with one soxr stream for the whole job and copies it into the ring;
- the audio callback calls `render`: it reads the ring, applies the gain envelope and adds the
  result to the output. It only copies into preallocated buffers.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable

import numpy as np

from daemon.audio.playback.ring import FrameRing
from daemon.audio.resample import StreamResampler, convert_channels, resample
from daemon.tempo.timeline import TimelineState

log = logging.getLogger(__name__)

#: Samples of the loop's own other end put before and after it when resampling it, so its seam
#: is filtered as if the loop went on (a resampler started on silence would soften its edges).
LOOP_WRAP_FRAMES = 2048


class Voice:
    """A job being played: feed it `[channels, frames]` blocks at `sample_rate`, in order."""

    def __init__(
        self,
        job: str,
        sample_rate: int,
        channels: int,
        *,
        device_rate: int,
        device_channels: int,
        start_frames: int,
        capacity_frames: int,
        fade_frames: int,
        gain_ramp_frames: int,
        gain: float = 1.0,
        wake: threading.Event | None = None,
        timeline: Callable[[], TimelineState | None] | None = None,
    ) -> None:
        if sample_rate <= 0 or channels <= 0:
            raise ValueError(f"voice {job!r} needs a positive rate and channel count, got {sample_rate} Hz x {channels}")
        self.job = job
        self.sample_rate = sample_rate
        self.channels = channels
        self.device_rate = device_rate
        self.device_channels = device_channels
        self.device_rate = device_rate
        self.ring = FrameRing(max(capacity_frames, start_frames + 1), device_channels)
        self._start_frames = start_frames
        self._fade_frames = max(1, fade_frames)
        self._gain_step = 1.0 / max(1, gain_ramp_frames)
        # Job thread -> feeder.
        self._pending: collections.deque[np.ndarray] = collections.deque()
        self._wake = wake  # the feeder's doorbell
        self._finish_requested = False
        # Feeder only.
        self._resampler = StreamResampler(sample_rate, device_rate, channels)
        self._staged: np.ndarray | None = None
        self._flushed = False
        # Feeder -> callback: every frame of the job is in the ring.
        self._input_done = False
        # Any thread -> callback.
        self._cancel_requested = False
        self._gain_target = float(gain)
        # Callback only (read elsewhere for status).
        self._playing = False
        self._fading = False
        self._fade_step = 0.0
        self._gain_now = float(gain)
        self.frames_played = 0
        # Device frames the voice has moved through since it started sounding: those played, and for a
        # voice in time also those it skipped or still owes (due, but not there when due). A producer
        # paced to its listener (a jam) counts on this one: counting only the played frames, an in-time
        # voice that ran dry would look ahead for good, its producer would wait, and it never sounds again.
        self.frames_elapsed = 0
        self.underruns = 0
        # Callback -> feeder: nothing more will sound; the feeder then sets `ended`.
        self._finished = False
        self.ended = threading.Event()
        # In time (issue 15). Job thread -> callback: the timeline beat the first frame sounds on;
        # the voice then keeps to the timeline (an underrun skips ahead instead of re-buffering).
        self._timeline = timeline
        self.launch_beat: float | None = None
        self._owed = 0  # callback only: frames due already that are skipped when they arrive
        # Callback only: when the block after the last one rendered while waiting for the launch
        # reaches the speakers (so a late callback can be told from a launch planned too late).
        self._next_block_s: float | None = None
        # Callback -> feeder (which logs it once): the launch beat had passed when the first block
        # was rendered, so this many device frames of the take's opening were skipped, and the
        # callback that rendered it came this long after its block was due (0 when not known).
        self.late_start_frames = 0
        self.late_callback_s = 0.0
        self._late_start_logged = False  # feeder only
        # Job thread -> feeder: a whole take to repeat until cancelled; feeder only: it at the
        # device rate and where the next write starts in it.
        self._loop_source: np.ndarray | None = None
        self._loop: np.ndarray | None = None
        self._loop_at = 0

    # -- job thread ------------------------------------------------------------------------

    def push(self, samples: np.ndarray) -> None:
        """Queue `[channels, frames]` float32 audio; never blocks and does no work on the caller's thread."""
        if samples.ndim != 2 or samples.shape[0] != self.channels:
            raise ValueError(f"voice {self.job!r} takes [{self.channels}, frames] audio, got shape {samples.shape}")
        if self._finish_requested:
            raise RuntimeError(f"voice {self.job!r} was already finished")
        if samples.shape[1]:
            self._pending.append(np.asarray(samples, dtype=np.float32))
            self._ring_doorbell()

    def launch_at(self, beat: float) -> None:
        """Sound the first frame exactly on timeline `beat` (the device's output latency compensated)."""
        if self._timeline is None:
            raise RuntimeError(f"voice {self.job!r} has no timeline to launch on")
        self.launch_beat = float(beat)

    def loop(self, samples: np.ndarray) -> None:
        """Play `[channels, frames]` (the whole take) over and over until cancelled, seam to seam."""
        if samples.ndim != 2 or samples.shape[0] != self.channels or samples.shape[1] == 0:
            raise ValueError(f"voice {self.job!r} loops [{self.channels}, frames>0] audio, got shape {samples.shape}")
        self._loop_source = np.asarray(samples, dtype=np.float32)
        self._ring_doorbell()

    def finish(self) -> None:
        """The job has no more audio: play out what is buffered, then end."""
        self._finish_requested = True
        self._ring_doorbell()

    def cancel(self) -> None:
        """Fade out within the fade time and end (a job not yet sounding ends at once)."""
        self._cancel_requested = True
        self._ring_doorbell()

    def set_gain(self, gain: float) -> None:
        """Linear gain; the change glides over the gain ramp time."""
        if not 0.0 <= gain <= 16.0:
            raise ValueError(f"gain must be within [0, 16], got {gain}")
        self._gain_target = float(gain)

    def _ring_doorbell(self) -> None:
        if self._wake is not None:
            self._wake.set()

    @property
    def gain(self) -> float:
        return self._gain_target

    @property
    def played_samples(self) -> int:
        """The job's samples played so far, at the job's rate."""
        return round(self.frames_played * self.sample_rate / self.device_rate)

    @property
    def elapsed_samples(self) -> int:
        """The job's samples the voice has moved through (played, skipped or owed), at the job's rate:
        what a producer paced to this voice has had consumed (see `frames_elapsed`)."""
        return round(self.frames_elapsed * self.sample_rate / self.device_rate)

    @property
    def playing(self) -> bool:
        """True while the voice is sounding (not priming its jitter buffer)."""
        return self._playing and not self._finished

    # -- feeder thread ---------------------------------------------------------------------

    def feed(self) -> bool:
        """Move pushed audio into the ring, resampled and mapped to the device; True if anything moved."""
        if self.late_start_frames and not self._late_start_logged:
            self._late_start_logged = True
            log.warning("job %s started %.1f ms after its launch beat (the sound card's callback came %.1f ms late): "
                        "its first %d frames were skipped to keep it on the beat", self.job,
                        self.late_start_frames / self.device_rate * 1000, self.late_callback_s * 1000,
                        self.late_start_frames)
        if self._finished:
            if not self.ended.is_set():
                self._pending.clear()
                self.ended.set()
            return False
        if self._cancel_requested:
            return False  # what is left will not be heard
        if self._loop_source is not None:
            return self._feed_loop()
        moved = False
        while True:
            if self._staged is None:
                block = self._next_block()
                if block is None:
                    break
                self._staged = block
            count = self.ring.write(self._staged)
            moved = moved or count > 0
            if count < self._staged.shape[0]:
                self._staged = self._staged[count:]
                break  # ring full: the callback will make room
            self._staged = None
        if self._flushed and self._staged is None and not self._input_done:
            self._input_done = True
        return moved

    def _feed_loop(self) -> bool:
        """Top up the ring from the loop, wrapping from its end to its start."""
        if self._loop is None:
            source = self._loop_source
            assert source is not None
            wrap = min(LOOP_WRAP_FRAMES, source.shape[1])
            circular = np.concatenate([source[:, -wrap:], source, source[:, :wrap]], axis=1)
            ratio = self.device_rate / self.sample_rate
            resampled = resample(circular, self.sample_rate, self.device_rate)
            start, frames = int(round(wrap * ratio)), int(round(source.shape[1] * ratio))
            self._loop = self._to_device_layout(resampled[:, start : start + frames])
        moved = False
        while self.ring.writable_frames > 0:
            count = self.ring.write(self._loop[self._loop_at :])
            if count == 0:
                break
            moved = True
            self._loop_at = (self._loop_at + count) % self._loop.shape[0]
        return moved

    def _next_block(self) -> np.ndarray | None:
        """The next pushed block at the device rate as `[frames, device_channels]`, or None."""
        # Read the flag before the deque: push() appends before finish() sets it, so once the
        # flag is seen, an empty deque means the job's audio is all here.
        finishing = self._finish_requested
        if self._pending:
            samples = self._resampler.push(self._pending.popleft())
        elif finishing and not self._flushed:
            samples = self._resampler.push(np.zeros((self.channels, 0), dtype=np.float32), last=True)
            self._flushed = True
        else:
            return None
        return self._to_device_layout(samples)

    def _to_device_layout(self, samples: np.ndarray) -> np.ndarray:
        """`[channels, T]` -> `[T, device_channels]`: mono spreads, many-to-mono averages, else channel by channel."""
        have, want = samples.shape[0], self.device_channels
        if have == want or have == 1 or want == 1:
            return np.ascontiguousarray(convert_channels(samples, want).T, dtype=np.float32)
        out = np.zeros((samples.shape[1], want), dtype=np.float32)
        shared = min(have, want)
        out[:, :shared] = samples[:shared].T
        return out

    # -- audio callback --------------------------------------------------------------------

    def render(self, out: np.ndarray, scratch: np.ndarray, ramp: np.ndarray, envelope: np.ndarray,
               at_s: float | None = None) -> None:
        """Add this voice's next `len(out)` frames to `out` `[n, device_channels]`.

        `scratch` `[>=n, device_channels]`, `ramp` (1, 2, 3, ... as float32, `[>=n]`) and `envelope`
        `[>=n]` are the mixer's preallocated buffers; nothing here allocates audio-sized arrays.
        `at_s` is when `out[0]` reaches the speakers, on the timeline clock (for a launch in time).
        """
        if self._finished:
            return
        if self.launch_beat is not None and at_s is not None and not self._fading:
            self._render_in_time(out, scratch, ramp, envelope, at_s)
            return
        n = out.shape[0]
        if self._cancel_requested and not self._fading:
            if not self._playing:
                self._finished = True  # never sounded: nothing to fade
                return
            self._fading = True
            self._fade_step = max(self._gain_now, 1e-6) / self._fade_frames
        input_done = self._input_done  # read before the ring: frames written before it are visible
        if not self._playing:
            buffered = self.ring.readable_frames
            if buffered >= self._start_frames or (input_done and buffered > 0):
                self._playing = True
            else:
                if input_done:
                    self._finished = True
                return
        block = scratch[:n]
        got = self.ring.read_into(block)
        self.frames_played += got
        self.frames_elapsed += got  # a free voice re-buffers after an underrun: it skips nothing
        if got < n:
            block[got:] = 0.0
            if input_done:
                self._finished = True
            else:
                self.underruns += 1
                self._playing = False  # re-buffer before sounding again
        self._apply_envelope(block, ramp[:n], envelope[:n])
        out += block

    def _render_in_time(self, out: np.ndarray, scratch: np.ndarray, ramp: np.ndarray, envelope: np.ndarray,
                        at_s: float) -> None:
        """Like `render`, for a voice launched on a beat: silent until the beat reaches the speakers,
        then on the timeline: audio that arrives late is skipped, so what sounds stays in time."""
        n = out.shape[0]
        if self._cancel_requested:
            if not self._playing:
                self._finished = True
                return
            self._fading = True
            self._fade_step = max(self._gain_now, 1e-6) / self._fade_frames
            self.render(out, scratch, ramp, envelope)
            return
        offset = 0
        if not self._playing:
            state = self._timeline() if self._timeline is not None else None
            if state is None:
                return
            offset = int(round((state.time_at(self.launch_beat) - at_s) * self.device_rate))  # type: ignore[arg-type]
            due_s, self._next_block_s = self._next_block_s, at_s + n / self.device_rate
            if offset >= n:
                return
            self._playing = True
            if offset < 0:
                self._owed += -offset  # the beat has passed: start where the take is by now
                self.frames_elapsed += -offset
                self.late_callback_s = max(0.0, at_s - due_s) if due_s is not None else 0.0
                self.late_start_frames = -offset  # after its companion: the feeder reads this one first
                offset = 0
        input_done = self._input_done
        while self._owed > 0 and self.ring.readable_frames > 0:
            self._owed -= self.ring.read_into(scratch[: min(self._owed, scratch.shape[0])])
        want = n - offset
        self.frames_elapsed += want  # on the timeline, sounded or not
        block = scratch[:want]
        got = self.ring.read_into(block) if self._owed == 0 else 0
        self.frames_played += got
        if got < want:
            block[got:] = 0.0
            if input_done and self._loop_source is None:
                self._finished = True
            else:
                self.underruns += 1
                self._owed += want - got
        self._apply_envelope(block, ramp[:want], envelope[:want])
        out[offset:] += block

    def _apply_envelope(self, block: np.ndarray, ramp: np.ndarray, envelope: np.ndarray) -> None:
        """Scale `block` by the gain, gliding toward the target (0 while fading) a step per frame."""
        start = self._gain_now
        target = 0.0 if self._fading else self._gain_target
        if start == target:
            if start != 1.0:
                block *= start
            return
        step = self._fade_step if self._fading else self._gain_step
        if target > start:
            np.multiply(ramp, step, out=envelope)
            envelope += start
            np.minimum(envelope, target, out=envelope)
        else:
            np.multiply(ramp, -step, out=envelope)
            envelope += start
            np.maximum(envelope, target, out=envelope)
        block *= envelope[:, None]
        self._gain_now = float(envelope[-1])
        if self._fading and self._gain_now <= 0.0:
            self._finished = True
