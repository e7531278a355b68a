"""Events: what the daemon tells clients, defined once for both transports (see protocol.messages)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from protocol.schema import Message


@dataclass(frozen=True)
class Event(Message):
    """Something the daemon tells clients. `re` is the ZeroMQ request id it answers."""

    re: str | None = field(default=None, kw_only=True)


@dataclass(frozen=True)
class Accepted(Event):
    """The job is queued; `queue_position` jobs will start before it (0: it is next)."""

    TYPE: ClassVar[str] = "accepted"
    OSC_FORMS: ClassVar[tuple[tuple[str, ...], ...]] = (("job", "queue_position"),)

    job: str
    queue_position: int


@dataclass(frozen=True)
class Started(Event):
    """The job left the queue and its model is loaded; audio will be at this rate and width.

    `seed` is the seed the job samples with: the request's, or the one the daemon drew for it
    (below 1000000, so a patch shows every digit). The same request with this seed gives the same audio.
    """

    TYPE: ClassVar[str] = "started"
    # The seed comes last, so patches that unpack the first four keep working (the second form
    # reads a daemon that sends no seed).
    OSC_FORMS: ClassVar[tuple[tuple[str, ...], ...]] = (
        ("job", "model", "sample_rate", "channels", "seed"),
        ("job", "model", "sample_rate", "channels"),
    )

    job: str
    model: str
    sample_rate: int
    channels: int
    # The seed it samples with (one the daemon drew is below 1000000: a Pd or Max number box shows it
    # whole, to be sent back as shown); a resumed jam's is the seed its snapshot's jam started with (absent
    # for a snapshot from before riffd saved it): the snapshot, not a seed, makes its audio.
    seed: int | None = None


@dataclass(frozen=True)
class Progress(Event):
    """`done` of `total` steps (the backend's units: decode steps for MusicGen)."""

    TYPE: ClassVar[str] = "progress"
    OSC_FORMS: ClassVar[tuple[tuple[str, ...], ...]] = (("job", "done", "total"),)

    job: str
    done: int
    total: int


@dataclass(frozen=True)
class Chunk(Event):
    """A block of the job's audio: float32 `[channels, frames]` starting at `offset_samples`.

    On ZeroMQ the PCM travels as its own frame and arrives as `audio`; over OSC the block is a
    complete WAV file at `path` (`chunk JOB INDEX PATH OFFSET_SAMPLES FRAMES STAGE`).

    `stage` tells a job's streams apart: "final" is the job's audio (all MusicGen has); a
    Jukebox job first sends a "preview" decoded from its top-level codes. Each stage counts
    `index` and `offset_samples` from 0, and over OSC its files are named after it
    (`JOB/preview-00000.wav`, `JOB/chunk-00000.wav`).
    """

    TYPE: ClassVar[str] = "chunk"
    # Fields added after the first three come after them, so patches that unpack `s i s` keep
    # working (the second form reads a daemon from before them).
    OSC_FORMS: ClassVar[tuple[tuple[str, ...], ...]] = (
        ("job", "index", "path", "offset_samples", "frames", "stage", "beat"),
        ("job", "index", "path", "offset_samples", "frames", "stage"),
        ("job", "index", "path"),
    )

    job: str
    index: int
    offset_samples: int
    sample_rate: int
    channels: int
    frames: int
    dtype: str = "float32"
    path: str | None = None
    # "final", or "preview" (a Jukebox job's quick decode of its top-level codes, sent first).
    stage: str = "final"
    # A job in time (issue 15): the timeline's beat (Link's, with --link) at the chunk's first
    # sample as the daemon plays it, so a DAW or patch can place it; absent otherwise.
    beat: float | None = None
    # numpy float32 [channels, frames]; not a header field (it is the PCM frame).
    audio: Any = field(default=None, compare=False, repr=False, metadata={"wire": False})


@dataclass(frozen=True)
class Done(Event):
    """The job finished: `frames` samples per channel at `sample_rate` describe the audio as it
    streamed, at the model's rate that `started` gave (the `chunk` events, when sent, add up to
    it); `path` is the saved file, if any: at the request's `out_sample_rate` when it gave one
    (the same audio resampled, so another number of frames), else at `sample_rate`.

    A job in time also says its length in `beats` and `bars` at its tempo `bpm`, and the beat it
    was launched on (`beat`).

    Where the backend measured it, what the job's time went to, on the daemon's worker thread:
    `engine` (the decode mode that ran), `decode_s` (decode steps and sampling), `codec_s`
    (codes to audio), and the mean decode step early and late in the model's window, in ms.
    They travel on ZeroMQ only (the OSC form is fixed).
    """

    TYPE: ClassVar[str] = "done"
    OSC_FORMS: ClassVar[tuple[tuple[str, ...], ...]] = (
        ("job", "path", "frames", "sample_rate", "beats", "bars", "bpm", "beat"),
        ("job", "path", "frames", "sample_rate"),
        ("job", "path"),
    )

    job: str
    path: str | None = None
    frames: int = 0
    sample_rate: int = 0
    beats: float | None = None
    bars: float | None = None
    bpm: float | None = None
    beat: float | None = None
    engine: str | None = None
    decode_s: float | None = None
    codec_s: float | None = None
    early_step_ms: float | None = None
    late_step_ms: float | None = None


@dataclass(frozen=True)
class Error(Event):
    """The job (or request) failed: `code` is stable for programs, `message` is for people.

    `job` is empty when the failing message could not be tied to one.
    """

    TYPE: ClassVar[str] = "error"
    OSC_FORMS: ClassVar[tuple[tuple[str, ...], ...]] = (("job", "code", "message"),)

    job: str
    code: str
    message: str


@dataclass(frozen=True)
class Status(Event):
    """The daemon's state: resident models, and jobs running and queued (ids, running first).

    `engine` is the decode mode the default model runs ("int8", "float32+draft"; empty while it
    is not loaded, or for a backend without modes), `engines` the mode of each of `models`, in
    their order. `playback` is the sound card jobs play on ("off" while playback is off) and
    `underruns` how often a sounding job ran dry since it opened. Those after `models` travel on
    ZeroMQ only: the OSC form ends with the variadic model list, so nothing can follow it.
    """

    TYPE: ClassVar[str] = "status"
    # The second form reads a daemon from before `engine`.
    OSC_FORMS: ClassVar[tuple[tuple[str, ...], ...]] = (
        ("protocol", "device", "default_model", "queued", "running", "engine", "models"),
        ("protocol", "device", "default_model", "queued", "running", "models"),
    )

    protocol: int
    # The device jobs run on, by name: "cpu", "cuda:0", "mps" (the daemon's --device, "auto" resolved),
    # or "ray" when they run on a cluster's workers (one line each in `workers`).
    device: str
    default_model: str
    queued: int
    running: int
    engine: str = ""
    models: tuple[str, ...] = ()
    engines: tuple[str, ...] = ()
    jobs: tuple[str, ...] = ()
    max_queue: int = 0
    uptime_s: float = 0.0
    playback: str = "off"
    underruns: int = 0
    # The timeline (issue 15): "link", "own" or "none", its tempo (0: none yet), beat, phase within
    # the bar, and the other Link peers. OSC clients ask with /riffd/clock instead.
    clock: str = "none"
    tempo: float = 0.0
    beat: float = 0.0
    phase: float = 0.0
    peers: int = 0
    # Running jams (their job ids), which are among `jobs` too.
    jams: tuple[str, ...] = ()
    # Running jobs that share each decode step of their model (continuous batching).
    batched: tuple[str, ...] = ()
    # With --ray (issue 19): one line per cluster worker, "NAME node=ID host=HOST pid=PID
    # health=HEALTH load=N models=ID,ID jobs=ID,ID"; HEALTH is ok, lost or starting (no lines when models
    # run in the daemon).
    workers: tuple[str, ...] = ()
    # Jobs resumed from the journal of an earlier daemon on the same folder (issue 18), still
    # queued or running (they are among `jobs` too).
    resumed: tuple[str, ...] = ()


@dataclass(frozen=True)
class Models(Event):
    """Resident models, the default first."""

    TYPE: ClassVar[str] = "models"
    OSC_FORMS: ClassVar[tuple[tuple[str, ...], ...]] = (("default_model", "loaded"),)

    default_model: str
    loaded: tuple[str, ...] = ()


@dataclass(frozen=True)
class Ok(Event):
    """A control request succeeded: `request` is its type, `subject` the job, model or address."""

    TYPE: ClassVar[str] = "ok"
    OSC_FORMS: ClassVar[tuple[tuple[str, ...], ...]] = (("request", "subject"),)

    request: str
    subject: str


@dataclass(frozen=True)
class Applied(Event):
    """A jam change is in the music: from `offset_samples` of the jam's audio on, every code was
    generated under it (a gain change: from the sample then playing). `request` is the change's type
    (`jam_set`, `jam_prompts`); over ZeroMQ `re` is its request id."""

    TYPE: ClassVar[str] = "applied"
    OSC_FORMS: ClassVar[tuple[tuple[str, ...], ...]] = (("job", "offset_samples"),)

    job: str
    offset_samples: int
    request: str = ""


@dataclass(frozen=True)
class Snapshot(Event):
    """A jam's state was written to `path`; resuming it continues the jam's audio from `offset_samples`."""

    TYPE: ClassVar[str] = "snapshot"
    OSC_FORMS: ClassVar[tuple[tuple[str, ...], ...]] = (("job", "path", "offset_samples"),)

    job: str
    path: str
    offset_samples: int


@dataclass(frozen=True)
class Lyric(Event):
    """A word of a Jukebox job's lyrics is sung from `start_s` to `end_s` (seconds from the piece's
    start, prime included): sent while the top level is sampled, for a jukebox_sample with
    `lyric_timing`, in the order of the words. `index` counts the lyrics' words from 0 (words not
    reached in this piece get none; a word the singing skips has start_s == end_s).

    Timing comes from the top prior's lyric alignment (Jukebox's alignment layer and head).
    """

    TYPE: ClassVar[str] = "lyric"
    OSC_FORMS: ClassVar[tuple[tuple[str, ...], ...]] = (("job", "index", "text", "start_s", "end_s"),)

    job: str
    index: int
    text: str
    start_s: float
    end_s: float
