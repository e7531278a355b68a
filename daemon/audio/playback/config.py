"""Settings of the daemon's sound-card output."""

from __future__ import annotations

from dataclasses import dataclass

from protocol.errors import InvalidArgument


@dataclass(frozen=True)
class PlaybackConfig:
    """How riffd plays jobs on the machine's sound card."""

    # Output device: a PortAudio index, or a case-insensitive part of its name; None = the default.
    device: int | str | None = None
    # Jitter buffer: a job starts sounding once this much of it is buffered, and re-buffers this
    # much after an underrun. Larger survives burstier generation; smaller answers faster.
    buffer_s: float = 0.5
    # Cancel fades a job out over this long instead of cutting it (a cut clicks).
    fade_ms: float = 5.0
    # A gain change glides over this long so that a fader move does not zipper.
    gain_ramp_ms: float = 10.0
    # Device rate; None = the device's own (for JACK, the server's), so PortAudio never resamples.
    sample_rate: int | None = None
    # Output channels; None = stereo, or mono where the device has one channel.
    channels: int | None = None
    # Frames per callback; 0 lets the host choose (JACK: its period).
    blocksize: int = 0
    # PortAudio's suggested output latency: "low", "high" or seconds. "high" (tens of ms) leaves
    # the Python callback room to wait for the GIL while a model runs; it is small beside the
    # jitter buffer. (On JACK the server's period decides instead.)
    latency: float | str = "high"
    # Silent callbacks before any job sounds: PortAudio on JACK drops a stream's first block.
    lead_in_blocks: int = 2
    # Per-job ring headroom beyond the jitter buffer, so the feeder can run ahead of the callback.
    headroom_s: float = 1.0
    # How often the feeder thread tops up the rings when no chunk wakes it.
    feed_interval_s: float = 0.01

    def validate(self) -> None:
        """Raise InvalidArgument naming the first setting out of range."""
        if not 0.0 <= self.buffer_s <= 30.0:
            raise InvalidArgument(f"playback buffer_s must be within [0, 30] s, got {self.buffer_s}")
        if not 0.0 < self.fade_ms <= 1000.0:
            raise InvalidArgument(f"playback fade_ms must be within (0, 1000] ms, got {self.fade_ms}")
        if not 0.0 < self.gain_ramp_ms <= 1000.0:
            raise InvalidArgument(f"playback gain_ramp_ms must be within (0, 1000] ms, got {self.gain_ramp_ms}")
        if self.sample_rate is not None and not 8000 <= self.sample_rate <= 384_000:
            raise InvalidArgument(f"playback sample_rate must be within [8000, 384000] Hz, got {self.sample_rate}")
        if self.channels is not None and not 1 <= self.channels <= 64:
            raise InvalidArgument(f"playback channels must be within [1, 64], got {self.channels}")
        if isinstance(self.latency, str) and self.latency not in ("low", "high"):
            raise InvalidArgument(f"playback latency must be 'low', 'high' or seconds, got {self.latency!r}")
        if not isinstance(self.latency, str) and not 0.0 < self.latency <= 2.0:
            raise InvalidArgument(f"playback latency must be within (0, 2] s, got {self.latency}")
        if self.blocksize < 0:
            raise InvalidArgument(f"playback blocksize must be >= 0, got {self.blocksize}")
        if self.lead_in_blocks < 1:
            raise InvalidArgument("playback lead_in_blocks must be at least 1 (PortAudio on JACK drops the first block)")
        if not 0.05 <= self.headroom_s <= 60.0:
            raise InvalidArgument(f"playback headroom_s must be within [0.05, 60] s, got {self.headroom_s}")
        if not 0.001 <= self.feed_interval_s <= 0.5:
            raise InvalidArgument(f"playback feed_interval_s must be within [0.001, 0.5] s, got {self.feed_interval_s}")
