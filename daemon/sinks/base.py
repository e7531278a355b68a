"""The sink seam: every consumer of a job's audio on the daemon side implements `JobSink`.

A factory is asked once per job, when the job starts and its model's format is known; it
returns a sink or None (not interested in this job). The worker thread then calls `write`
for each chunk in order and exactly one of `finish` or `abort`. Sinks run on the worker
thread, so they must be quick; a sink feeding a real-time consumer (the sound card) hands
the samples over a lock-free buffer instead of doing the consumer's work here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from daemon.audio.types import AudioChunk
from daemon.jobs import Job


class JobSink(Protocol):
    def write(self, chunk: AudioChunk) -> str | None:
        """Take the next chunk; return the path of a file holding it, if this sink wrote one."""
        ...

    def finish(self) -> str | None:
        """The job completed; return the path of the job's whole audio, if this sink saved it."""
        ...

    def abort(self) -> None:
        """The job failed or was cancelled: leave nothing incomplete under a final name."""
        ...


#: (job, sample_rate, channels) -> a sink for the job, or None.
SinkFactory = Callable[[Job, int, int], "JobSink | None"]
