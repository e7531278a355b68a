"""What the scheduler needs from a resident model: one streaming entry point.

Every backend (MusicGen, Jukebox) implements `MusicBackend`; the scheduler never reaches past
it, so tests can inject a fake one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

from daemon.audio.types import Audio, AudioChunk
from protocol.params import GenerationParams

#: Called with (done, total) in the backend's own units (decode steps for MusicGen).
ProgressFn = Callable[[int, int], None]
#: Polled between decode steps; True makes the stream raise protocol.errors.Cancelled.
StopFn = Callable[[], bool]


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
        """Yield the job's audio in order; raise a protocol.errors.RiffdError on bad input."""
        ...
