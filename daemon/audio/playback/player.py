"""The daemon's sound-card output: one PortAudio stream, a feeder thread, and a voice per job."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from daemon.audio.playback.config import PlaybackConfig
from daemon.audio.playback.device import OutputDevice, PlaybackUnavailable, forget_portaudio, resolve_output_device
from daemon.audio.playback.mixer import Mixer
from daemon.audio.playback.voice import Voice
from daemon.tempo.timeline import Timeline, now_s
from protocol.errors import InvalidArgument

log = logging.getLogger(__name__)

# The players of this process not yet closed (by id): PortAudio's device list is only refreshed
# while there are none, since refreshing it closes every stream it has open.
_OPEN: set[int] = set()
_OPEN_LOCK = threading.Lock()


@dataclass(frozen=True)
class PlaybackStatus:
    """What status reports about playback."""

    enabled: bool
    device: str
    host_api: str
    sample_rate: int
    channels: int
    buffer_s: float
    jobs: tuple[str, ...]  # jobs with a voice (buffering or sounding), oldest first
    underruns: int  # times a sounding job ran dry and had to re-buffer, since start
    xruns: int  # blocks the host reported late (PortAudio output underflow), since start


class Player:
    """Plays several jobs at once on one output device, each with its own gain.

    Open with `Player.open(config)`; give each job a voice with `add_voice`, push its chunks,
    then `finish` (play out) or `cancel` (fade out). `close` fades everything and stops.
    """

    def __init__(self, sd: ModuleType, device: OutputDevice, config: PlaybackConfig,
                 timeline: Timeline | None = None) -> None:
        self._sd = sd
        self._timeline = timeline
        self.config = config
        self.device = device
        self.sample_rate = config.sample_rate or device.default_sample_rate
        self.channels = config.channels or min(2, device.max_channels)
        self._mixer = Mixer(self.channels, lead_in_blocks=config.lead_in_blocks)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._jobs_lock = threading.Lock()  # guards _by_job; never taken by the audio callback
        self._by_job: dict[str, Voice] = {}
        self._retired_underruns = 0
        self._xruns = 0
        self._alive = True
        try:
            self._stream = sd.OutputStream(
                device=device.index,
                samplerate=self.sample_rate,
                channels=self.channels,
                dtype="float32",
                blocksize=config.blocksize,
                latency=config.latency,
                callback=self._callback,
                finished_callback=self._stream_finished,
            )
        except (sd.PortAudioError, ValueError) as exc:
            raise PlaybackUnavailable(f"cannot open {device.name} at {self.sample_rate} Hz x {self.channels} ch: {exc}") from exc
        self._feeder = threading.Thread(target=self._feed_loop, name="riffd-playback-feeder", daemon=True)
        latency = self._stream.latency
        self._nominal_latency_s = float(latency[1] if isinstance(latency, (tuple, list)) else latency)

    @classmethod
    def open(cls, config: PlaybackConfig = PlaybackConfig(), timeline: Timeline | None = None, *,
             fresh: bool = False) -> Player:
        """Open and start the output stream; PlaybackUnavailable says why it cannot. With a
        `timeline`, voices can be launched on its beats; with `fresh`, PortAudio lists its devices
        again first, unless another player of this process is open (that would close its stream)."""
        config.validate()
        with _OPEN_LOCK:
            fresh = fresh and not _OPEN
        sd, device = resolve_output_device(config.device, fresh=fresh)
        player = cls(sd, device, config, timeline)
        try:
            player._stream.start()
        except sd.PortAudioError as exc:
            player._stop.set()
            player._stream.close()
            raise PlaybackUnavailable(f"cannot start {device.name}: {exc}") from exc
        player._feeder.start()  # after the stream: the feeder takes an inactive stream for a lost device
        with _OPEN_LOCK:
            _OPEN.add(id(player))
        log.info(
            "playback on %s (%s) at %d Hz x %d ch, jitter buffer %.3f s",
            device.name, device.host_api, player.sample_rate, player.channels, config.buffer_s,
        )
        return player

    # -- jobs ------------------------------------------------------------------------------

    def add_voice(self, job: str, sample_rate: int, channels: int, *, gain: float = 1.0) -> Voice:
        """A new voice for `job`, mixed in as soon as its jitter buffer fills."""
        if not self.alive:
            raise PlaybackUnavailable(f"playback on {self.device.name} has stopped (device or server gone)")
        if not 0.0 <= gain <= 16.0:
            raise InvalidArgument(f"gain must be within [0, 16], got {gain}")
        rate = self.sample_rate
        voice = Voice(
            job,
            sample_rate,
            channels,
            device_rate=rate,
            device_channels=self.channels,
            start_frames=max(1, round(self.config.buffer_s * rate)),
            capacity_frames=round((self.config.buffer_s + self.config.headroom_s) * rate),
            fade_frames=round(self.config.fade_ms * 1e-3 * rate),
            gain_ramp_frames=round(self.config.gain_ramp_ms * 1e-3 * rate),
            gain=gain,
            wake=self._wake,
            timeline=self._timeline.state if self._timeline is not None else None,
        )
        with self._jobs_lock:
            old = self._by_job.get(job)
            if old is not None and not old.ended.is_set():
                raise InvalidArgument(f"job {job!r} is already playing")
            self._by_job[job] = voice
        self._mixer.add(voice)
        self._wake.set()  # the feeder may be idle
        return voice

    def voice(self, job: str) -> Voice | None:
        with self._jobs_lock:
            return self._by_job.get(job)

    def cancel(self, job: str) -> bool:
        """Fade `job` out; False when it has no voice, or its voice has ended (nothing to fade)."""
        voice = self.voice(job)
        if voice is None or voice.ended.is_set():
            return False
        voice.cancel()
        return True

    def set_gain(self, job: str, gain: float) -> bool:
        voice = self.voice(job)
        if voice is None:
            return False
        voice.set_gain(gain)
        return True

    def wait_idle(self, timeout_s: float) -> bool:
        """Block until every voice has ended (True) or `timeout_s` passes (False)."""
        deadline = time.monotonic() + timeout_s
        while True:
            waiting = [v for v in self._mixer.voices if not v.ended.is_set()]
            if not waiting:
                return True
            left_s = deadline - time.monotonic()
            if left_s <= 0:
                return False
            waiting[0].ended.wait(left_s)

    @property
    def alive(self) -> bool:
        """True while the stream runs; False once closed, or once its device or server went away."""
        return self._alive and not self._stop.is_set() and self._stream.active

    def status(self) -> PlaybackStatus:
        voices = self._mixer.voices
        return PlaybackStatus(
            enabled=self.alive,
            device=self.device.name,
            host_api=self.device.host_api,
            sample_rate=self.sample_rate,
            channels=self.channels,
            buffer_s=self.config.buffer_s,
            jobs=tuple(v.job for v in voices if not v.ended.is_set()),
            underruns=self._retired_underruns + sum(v.underruns for v in voices),
            xruns=self._xruns,
        )

    def close(self, *, fade_timeout_s: float = 0.25) -> None:
        """Fade out every voice, stop the stream and the feeder."""
        if self._stop.is_set():
            return
        running = self.alive
        for voice in self._mixer.voices:
            voice.cancel()
        if running:
            self.wait_idle(fade_timeout_s)
        self._stop.set()
        self._wake.set()
        self._feeder.join(timeout=2.0)
        if running:
            try:
                self._stream.stop()
                self._stream.close()
            except self._sd.PortAudioError as exc:
                log.warning("closing playback stream: %s", exc)
        else:
            # The device vanished under the stream: stopping it would hang (PortAudio on JACK).
            log.warning("playback device %s went away; leaving its stream", self.device.name)
            forget_portaudio(self._sd)
        for voice in self._mixer.voices:
            voice.ended.set()
        self._alive = False
        with _OPEN_LOCK:
            _OPEN.discard(id(self))

    def __enter__(self) -> Player:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- threads ---------------------------------------------------------------------------

    def _callback(self, outdata: np.ndarray, frames: int, time_info: object, status: object) -> None:
        """PortAudio's callback: the mix, or silence. No locks, no I/O, no allocation of audio."""
        if status.output_underflow:  # type: ignore[attr-defined]
            self._xruns += 1
        at_s = None
        if self._timeline is not None:
            # When this block reaches the speakers, on the timeline clock: PortAudio's own estimate
            # of the output latency for this very buffer, else the stream's nominal one.
            latency_s = time_info.outputBufferDacTime - time_info.currentTime  # type: ignore[attr-defined]
            if not 0.0 < latency_s < 2.0:
                latency_s = self._nominal_latency_s
            at_s = now_s() + latency_s
        self._mixer.render(outdata, at_s, self.sample_rate)

    def _stream_finished(self) -> None:
        if not self._stop.is_set():
            log.error("playback stream on %s stopped (device or server gone); playback is off", self.device.name)
        self._alive = False

    def _feed_loop(self) -> None:
        """Top up every voice's ring when a chunk arrives, and every feed interval as rings drain."""
        interval = self.config.feed_interval_s
        while not self._stop.is_set():
            # Idle (no voice): sleep until a voice is added or the player stops; a push rings too.
            self._wake.wait(interval if self._mixer.voices else None)
            self._wake.clear()
            if self._alive and not self._stop.is_set() and not self._stream.active:
                self._device_lost()
            for voice in self._mixer.voices:
                voice.feed()
                if voice.ended.is_set():
                    self._retire(voice)

    def _device_lost(self) -> None:
        """The stream stopped under us (device unplugged, JACK server gone): end every voice."""
        log.error("playback stream on %s stopped (device or server gone); playback is off", self.device.name)
        self._alive = False
        for voice in self._mixer.voices:
            voice.ended.set()

    def _retire(self, voice: Voice) -> None:
        self._mixer.remove(voice)
        self._retired_underruns += voice.underruns
        with self._jobs_lock:
            if self._by_job.get(voice.job) is voice:
                del self._by_job[voice.job]


def open_player(config: PlaybackConfig) -> Player | None:
    """The player, or None after one clear log line saying why playback is off."""
    try:
        return Player.open(config)
    except PlaybackUnavailable as exc:
        log.warning("playback is off: %s", exc)
        return None
