"""What travels between the front daemon and a cluster worker: a job's spec going out, and the
items of its stream coming back. Plain picklable dataclasses, no Ray and no torch."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from protocol.events import Event
from protocol.messages import JobRequest
from protocol.params import DEFAULT_MAX_DURATION_S, GenerationParams

if TYPE_CHECKING:
    from daemon.models.jukebox.codes_file import TopCodes


@dataclass(frozen=True)
class LoadSettings:
    """How a worker loads models: the front daemon's settings, so a model behaves alike on any worker."""

    device: str = "auto"
    cache_dir: Path | None = None
    max_duration_s: float = DEFAULT_MAX_DURATION_S
    engine: str | None = "auto"
    max_batch: int = 4
    batch_memory_mb: float = 4096.0


@dataclass(frozen=True)
class InputAudio:
    """An audio input the front daemon read (from its allowed folders or the request's inline
    samples): `samples` float32 `[channels, frames]` at `sample_rate`. Workers never see paths."""

    samples: np.ndarray
    sample_rate: int


@dataclass(frozen=True)
class JobSpec:
    """One job for a worker: its request with every audio input replaced by a key of `inputs`."""

    job_id: str
    model_id: str
    request: JobRequest
    params: GenerationParams  # validated by the front, its seed the one the started event reported
    seed: int
    priority: int = 0
    inputs: dict[str, InputAudio] = field(default_factory=dict)
    # Jukebox: the top-level codes to upsample (read by the front from a codes file or an earlier
    # job's), and whether the sampled codes come back (`CodesItem`: the front keeps them under --out).
    codes: TopCodes | None = None
    send_codes: bool = False
    # A journaled job (issue 18): its checkpoint lives at the front; the worker resumes from the
    # arrays the front loaded (None: from the start) and sends each new one back (`CheckpointItem`).
    journaled: bool = False
    resume: dict[str, np.ndarray] | None = None


@dataclass(frozen=True)
class ModelInfo:
    """A model resident on a worker: what the front's stand-in for it reports."""

    model_id: str
    sample_rate: int
    audio_channels: int
    supports_melody: bool
    engine: str
    slots: int  # generate/continue jobs it runs at once (continuous batching)


@dataclass(frozen=True)
class WorkerInfo:
    """A worker's answer to a ping."""

    name: str
    pid: int
    node_id: str
    host: str
    models: tuple[str, ...]
    running: tuple[str, ...]


@dataclass(frozen=True)
class ProgressItem:
    done: int
    total: int


@dataclass(frozen=True)
class ChunkItem:
    """An `AudioChunk`'s fields; `audio` float32 `[channels, frames]`."""

    index: int
    offset_samples: int
    audio: np.ndarray
    sample_rate: int
    stage: str
    beat: float | None


@dataclass(frozen=True)
class EndItem:
    """The job's stream ended well: the backend's StreamReport fields (None: it measured none)."""

    report: dict[str, object] | None


@dataclass(frozen=True)
class ErrorItem:
    """The job (or a load) failed on the worker: a protocol error code and its message."""

    code: str
    message: str


@dataclass(frozen=True)
class CodesItem:
    """A Jukebox job's top-level codes, as soon as they are sampled (the front writes them)."""

    codes: TopCodes


@dataclass(frozen=True)
class CheckpointItem:
    """A journaled job's new checkpoint (the front saves it in its journal)."""

    arrays: dict[str, np.ndarray]
    done: int
    total: int


@dataclass(frozen=True)
class EventItem:
    """An event of the job that is not audio (a Jukebox word's timing), for its listeners."""

    event: Event


StreamItem = ProgressItem | ChunkItem | EndItem | ErrorItem | CodesItem | CheckpointItem | EventItem
