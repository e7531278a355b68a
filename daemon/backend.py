"""What the scheduler needs from a resident model: one streaming entry point.

Every backend (MusicGen, Jukebox) implements `MusicBackend`; the scheduler never reaches past
it, so tests can inject a fake one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from daemon.audio.types import Audio, AudioChunk
from protocol.params import GenerationParams

#: Called with (done, total) in the backend's own units (decode steps for MusicGen).
ProgressFn = Callable[[int, int], None]
#: Polled between decode steps; True makes the stream raise protocol.errors.Cancelled.
StopFn = Callable[[], bool]


@dataclass(frozen=True)
class StreamReport:
    """What a finished stream spent where (the return value of a backend's `stream` generator).

    Sent to clients in the job's `done` event: the parts of its real-time factor, measured on
    the worker thread that did the work.
    """

    engine: str  # the decode mode that ran ("int8", "float32+draft")
    decode_s: float  # inside the decode loop: every step and its sampling, prefills included
    codec_s: float  # turning codes into audio
    steps: int  # decode steps (prefills not counted)
    step_s: float  # the steps' own time (decode_s less the prefills and the delay pattern's bookkeeping)
    prefill_s: float  # the windows' prefills
    early_step_ms: float | None  # mean step in the first tenth of a window's positions
    late_step_ms: float | None  # mean step in the last tenth (None: the job never got there)


class MusicBackend(Protocol):
    """A loaded model that turns a request into a stream of audio chunks."""

    model_id: str
    sample_rate: int
    audio_channels: int
    supports_melody: bool

    def stream(
        self,
        text: str | None,
        params: GenerationParams,
        *,
        audio_prompt: Audio | None = None,
        melody: Audio | None = None,
        progress: ProgressFn | None = None,
        should_stop: StopFn | None = None,
    ) -> Iterator[AudioChunk]:
        """Yield the job's audio in order; raise a protocol.errors.RiffdError on bad input.

        A generator may return a `StreamReport` (what the stream spent where) as its value.
        """
        ...
