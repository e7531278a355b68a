"""What the scheduler needs from a resident model: one entry point that runs a job.

Every backend (MusicGen, Jukebox) implements `MusicBackend` and takes the requests it serves
itself; the runner never looks at request types, so tests can inject a fake backend and new
kinds of job (a jam) are the backend's business.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from daemon.audio.types import Audio, AudioChunk
from protocol.audio_ref import AudioSource
from protocol.events import Event

if TYPE_CHECKING:
    from daemon.jobs import Job

#: Called with (done, total) in the backend's own units (decode steps for MusicGen).
ProgressFn = Callable[[int, int], None]
#: Polled between decode steps; True makes the stream raise protocol.errors.Cancelled.
StopFn = Callable[[], bool]


@dataclass(frozen=True)
class StreamReport:
    """What a finished stream spent where (the return value of a backend's `run_job` generator,
    and of MusicGen.stream).

    Sent to clients in the job's `done` event: the parts of its real-time factor, measured where
    the job consumes its columns and chunks (a batched job's steps are shared with other streams:
    each step counts whole for every stream in it).
    """

    engine: str  # the decode mode that ran ("int8", "float32+draft")
    decode_s: float  # inside the decode loop: every step and its sampling, prefills included
    codec_s: float  # turning codes into audio
    steps: int  # decode steps (prefills not counted)
    step_s: float  # the steps' own time (decode_s less the prefills and the delay pattern's bookkeeping)
    prefill_s: float  # the windows' prefills
    early_step_ms: float | None  # mean step in the first tenth of a window's positions
    late_step_ms: float | None  # mean step in the last tenth (None: the job never got there)


class Checkpoint(Protocol):
    """Where a long job keeps its progress so a restarted daemon resumes it (daemon.journal)."""

    def load(self) -> dict[str, np.ndarray] | None:
        """The arrays saved last, with `progress` ([done, total]) beside them (None: none, or unreadable)."""
        ...

    def save(self, arrays: dict[str, np.ndarray], done: int, total: int) -> None:
        """Replace the checkpoint, atomically, with `arrays` (progress `done` of `total`)."""
        ...


@dataclass(frozen=True)
class JobContext:
    """What the daemon hands a backend with a job: the seed to sample with (the one its
    `started` event reported), its inputs read under the daemon's rules, progress and stop."""

    seed: int
    # A request's audio (a file under an allowed folder, or inline samples), limits checked.
    read_audio: Callable[[AudioSource | None], Audio | None]
    # Another input file a request names (e.g. a codes file), confined like audio inputs.
    resolve_input: Callable[[str], Path]
    progress: ProgressFn
    should_stop: StopFn
    # Runs queued jobs that outrank this one, then returns: a long render calls it between steps.
    yield_to_higher: Callable[[], None]
    # A journaled job's checkpoint (None: not journaled); a backend that can resume mid-job uses it.
    checkpoint: Checkpoint | None = None
    # Sends an event of the job that is not audio (a Jukebox job's lyric timing) to its listeners.
    emit: Callable[[Event], None] | None = None


class MusicBackend(Protocol):
    """A loaded model that turns the jobs it serves into a stream of audio chunks."""

    model_id: str
    sample_rate: int
    audio_channels: int
    supports_melody: bool

    def run_job(self, job: Job, context: JobContext) -> Iterator[AudioChunk]:
        """Yield the job's audio in order; raise a protocol.errors.RiffdError on bad input
        (Unsupported for a request this model does not serve).

        A generator may return a `StreamReport` (what the job spent where) as its value.
        """
        ...

    def concurrent_jobs(self, job: Job) -> int:
        """How many jobs like `job` may run on this model at once (1: one at a time). The
        scheduler starts `job` beside running jobs of this model only while fewer run."""
        ...

    def batched_jobs(self) -> tuple[str, ...]:
        """Ids of the jobs sharing this model's decode steps now (for status)."""
        ...
