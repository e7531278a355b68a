"""The one schema: every request and event riffd speaks, with validation and a protocol version.

Requests are defined here, events in protocol.events (re-exported here).

The ZeroMQ codec (`protocol.wire`) and the OSC codec (`protocol.osc`) are derived from the
dataclasses here, so the daemon and its clients cannot drift. A request that starts audio
work (generate, continue, Jukebox) is a job: it is answered by `accepted`, `started`,
`progress`, `chunk` events and ends with exactly one `done` or `error`. Control requests
(cancel, status, models, load, unload, subscribe) are answered by one event.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import ClassVar

from protocol.audio_ref import AudioSource
from protocol.errors import InvalidArgument, PromptTooLong
from protocol.events import Accepted, Chunk, Done, Error, Event, Models, Ok, Progress, Started, Status
from protocol.params import GenerationParams
from protocol.schema import Message
from protocol.tempo import Clock, InTime, check_bpm

#: Bumped on any incompatible change; a message with another version is refused.
PROTOCOL_VERSION = 1

MAX_PROMPT_CHARS = 2000
#: Jukebox labels: an artist or genre name, and the lyrics of a whole song.
MAX_LABEL_CHARS = 200
MAX_LYRICS_CHARS = 8000
MAX_PATH_CHARS = 4096
MAX_MODEL_ID_CHARS = 512
PRIORITY_RANGE = (-1000, 1000)
OUTPUT_FORMATS = ("wav", "flac")
BIT_DEPTHS = (16, 24, 32)
OUTPUT_SAMPLE_RATE_RANGE = (8000, 384000)
MAX_GAIN = 8.0

# Job ids end up in file names, so they are kept to a portable, traversal-free alphabet.
_JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def check_job_id(job: str, *, what: str = "job") -> str:
    if not _JOB_ID.fullmatch(job):
        raise InvalidArgument(
            f"{what} {job!r} is not a valid job id (1-64 characters of A-Z a-z 0-9 . _ -, not starting with . _ -)"
        )
    return job


def _check_text(name: str, value: str | None, max_chars: int, *, empty_ok: bool = False,
                too_long: type[InvalidArgument] = InvalidArgument) -> None:
    if value is None:
        return
    if not value and not empty_ok:
        raise InvalidArgument(f"{name} must not be empty")
    if len(value) > max_chars:
        raise too_long(f"{name} is {len(value)} characters long, over the limit of {max_chars}")
    if "\x00" in value:
        raise InvalidArgument(f"{name} must not contain NUL characters")


def _check_source(name: str, value: AudioSource | None) -> None:
    """A path is checked here; inline audio checked itself when it was built."""
    if isinstance(value, str):
        _check_text(name, value, MAX_PATH_CHARS)


# --------------------------------------------------------------------------------------------
# Requests


@dataclass(frozen=True)
class Request(Message):
    """A client's request. `id` correlates replies on ZeroMQ (the client picks it).

    `reply_port` (OSC only): send the answer, and a job's events, to this UDP port on the
    sender's host instead of the port the request came from (Pd's and Max's senders cannot
    receive on their sending port).
    """

    id: str | None = field(default=None, kw_only=True)
    reply_port: int | None = field(default=None, kw_only=True)

    def validate(self) -> None:
        _check_text("id", self.id, 128)
        if self.reply_port is not None and not 1 <= self.reply_port <= 65535:
            raise InvalidArgument(f"reply_port must be within [1, 65535], got {self.reply_port}")


@dataclass(frozen=True, kw_only=True)
class JobRequest(Request):
    """Fields every job request has: identity, model, priority and what to write."""

    # The client's job id; the daemon picks one when absent.
    job: str | None = None
    # Model id (preset, hub id or local folder); the daemon's default when absent.
    model: str | None = None
    # Higher runs first; a live request can jump ahead of queued renders.
    priority: int = 0
    # Write the whole job to a file under the daemon's --out (default: yes over OSC, no over ZeroMQ).
    save: bool | None = None
    # Send chunk events while generating (OSC chunks are WAV files under --out).
    chunks: bool = True
    # Saved file: container, sample rate (the model's when absent) and bit depth.
    format: str = "wav"
    out_sample_rate: int | None = None
    bit_depth: int | None = None
    # Play on the daemon's sound card (default: the daemon's --play setting), at this linear gain.
    play: bool | None = None
    gain: float | None = None

    def validate(self) -> None:
        super().validate()
        if self.gain is not None and not 0.0 <= self.gain <= MAX_GAIN:
            raise InvalidArgument(f"gain must be within [0, {MAX_GAIN:g}] (linear), got {self.gain}")
        if self.job is not None:
            check_job_id(self.job)
        _check_text("model", self.model, MAX_MODEL_ID_CHARS)
        lo, hi = PRIORITY_RANGE
        if not lo <= self.priority <= hi:
            raise InvalidArgument(f"priority must be within [{lo}, {hi}], got {self.priority}")
        if self.format not in OUTPUT_FORMATS:
            raise InvalidArgument(f"format must be one of {', '.join(OUTPUT_FORMATS)}, got {self.format!r}")
        lo, hi = OUTPUT_SAMPLE_RATE_RANGE
        if self.out_sample_rate is not None and not lo <= self.out_sample_rate <= hi:
            raise InvalidArgument(f"out_sample_rate must be within [{lo}, {hi}] Hz, got {self.out_sample_rate}")
        if self.bit_depth is not None and self.bit_depth not in BIT_DEPTHS:
            raise InvalidArgument(f"bit_depth must be one of {BIT_DEPTHS}, got {self.bit_depth}")


@dataclass(frozen=True, kw_only=True)
class MusicGenRequest(JobRequest, InTime):
    """Sampling controls of the MusicGen core; absent means GenerationParams' default.

    The tempo fields (bars, quantum, bpm, launch, loop, conform) are protocol.tempo.InTime's.
    """

    top_k: int | None = None
    top_p: float | None = None
    temperature: float | None = None
    guidance_scale: float | None = None
    seed: int | None = None
    greedy: bool | None = None
    extend_stride_s: float | None = None

    def generation_params(self, duration_s: float | None = None) -> GenerationParams:
        """The request's controls as GenerationParams (unvalidated against daemon limits); a job in
        bars gives the `duration_s` its tempo makes."""
        # duration_s is each subclass's own positional field.
        given = {name: getattr(self, name) for name in SAMPLING_FIELDS if getattr(self, name) is not None}
        own = self.duration_s  # type: ignore[attr-defined]
        return GenerationParams(duration_s=own if duration_s is None else duration_s, **given)

    def validate(self) -> None:
        super().validate()
        self.validate_tempo(self.duration_s)  # type: ignore[attr-defined]
        # With bars the length is known only once the tempo is: check the other controls.
        self.generation_params(None if self.bars is None else 1.0).validate(max_duration_s=math.inf)


#: Fields of GenerationParams a request sets by name (duration_s is positional).
SAMPLING_FIELDS = ("top_k", "top_p", "temperature", "guidance_scale", "seed", "greedy", "extend_stride_s")


@dataclass(frozen=True)
class Generate(MusicGenRequest):
    """Text to music, optionally continuing an audio prompt or following a melody.

    Audio fields are paths the daemon reads, or (ZeroMQ only) the samples themselves.
    """

    TYPE: ClassVar[str] = "generate"
    OSC_FORMS: ClassVar[tuple[tuple[str, ...], ...]] = (("prompt", "duration_s"),)
    OSC_OPTIONS: ClassVar[bool] = True

    prompt: str
    duration_s: float
    audio_prompt: AudioSource | None = field(default=None, kw_only=True)
    melody: AudioSource | None = field(default=None, kw_only=True)

    def validate(self) -> None:
        super().validate()
        _check_text("prompt", self.prompt, MAX_PROMPT_CHARS, empty_ok=True, too_long=PromptTooLong)
        _check_source("audio_prompt", self.audio_prompt)
        _check_source("melody", self.melody)
        if self.audio_prompt is not None and self.melody is not None:
            raise InvalidArgument("give audio_prompt or melody, not both")


@dataclass(frozen=True)
class Continue(MusicGenRequest):
    """Continue audio (a path, or inline samples over ZeroMQ) by `duration_s` seconds,
    optionally steered by a text prompt."""

    TYPE: ClassVar[str] = "continue"
    OSC_FORMS: ClassVar[tuple[tuple[str, ...], ...]] = (("audio", "duration_s"),)
    OSC_OPTIONS: ClassVar[bool] = True

    audio: AudioSource
    duration_s: float
    prompt: str | None = field(default=None, kw_only=True)

    def validate(self) -> None:
        super().validate()
        _check_source("audio", self.audio)
        _check_text("prompt", self.prompt, MAX_PROMPT_CHARS, empty_ok=True, too_long=PromptTooLong)


@dataclass(frozen=True, kw_only=True)
class JukeboxRequest(JobRequest):
    """Labels and sampling controls of both Jukebox requests (issue 6).

    A Jukebox job streams in two stages: `preview` chunks decoded straight from the top-level
    codes first, then `final` chunks as each bottom-level window is upsampled (see `Chunk.stage`).
    """

    # Artist and genres as the model's vocabulary spells them (empty: "unknown"); the daemon
    # refuses names the model does not know. Several genres are joined with "_".
    artist: str = ""
    genres: str = ""
    # Lyrics the top level sings (only lyric models use them).
    lyrics: str = ""
    # Same seed, labels and model give the same tokens; the daemon draws one when absent.
    seed: int | None = None
    # Sampling temperature of the levels above the bottom (the bottom keeps Jukebox's 0.99).
    temperature: float = 0.98
    # Sample among the k most likely codes (0: off) / within nucleus mass top_p (0: off).
    top_k: int = 0
    top_p: float = 0.0
    # Jukebox renders take hours at full scale: they yield to live MusicGen requests.
    priority: int = -10

    def validate(self) -> None:
        super().validate()
        _check_text("artist", self.artist, MAX_LABEL_CHARS, empty_ok=True)
        _check_text("genres", self.genres, MAX_LABEL_CHARS, empty_ok=True)
        _check_text("lyrics", self.lyrics, MAX_LYRICS_CHARS, empty_ok=True, too_long=PromptTooLong)
        if self.seed is not None and not 0 <= self.seed < 2**63:
            raise InvalidArgument(f"seed must be an integer in [0, 2^63), got {self.seed}")
        if not self.temperature > 0:
            raise InvalidArgument(f"temperature must be > 0, got {self.temperature}")
        if self.top_k < 0:
            raise InvalidArgument(f"top_k must be >= 0, got {self.top_k}")
        if not 0.0 <= self.top_p <= 1.0:
            raise InvalidArgument(f"top_p must be within [0, 1], got {self.top_p}")


@dataclass(frozen=True, kw_only=True)
class JukeboxSample(JukeboxRequest):
    """Sample a new piece from artist, genres and lyrics; with `prime`, continue that audio."""

    TYPE: ClassVar[str] = "jukebox_sample"
    OSC_ADDRESS: ClassVar[str] = "/riffd/jukebox/sample"
    OSC_FORMS: ClassVar[tuple[tuple[str, ...], ...]] = (("duration_s",),)
    OSC_OPTIONS: ClassVar[bool] = True

    # Length of the whole piece (prime included), rounded down to whole top-level tokens.
    duration_s: float
    # Audio to continue: a path the daemon reads, or (ZeroMQ only) the samples themselves.
    prime: AudioSource | None = None
    # False: sample the top level only (a fast sketch; its codes can be upsampled later).
    upsample: bool = True

    def validate(self) -> None:
        super().validate()
        if not math.isfinite(self.duration_s) or self.duration_s <= 0:
            raise InvalidArgument(f"duration_s must be positive, got {self.duration_s}")
        _check_source("prime", self.prime)


@dataclass(frozen=True, kw_only=True)
class JukeboxUpsample(JukeboxRequest):
    """Upsample top-level codes to full-rate audio (the levels below the top).

    `source`: the id of an earlier saved jukebox_sample job (its `JOB.codes.npz` under the
    daemon's --out), a `.npz` codes file, a `.npy` array of top-level codes, or audio (a path,
    or samples over ZeroMQ) whose top-level codes the VQ-VAE computes. Labels left empty come
    from a codes file that has them.
    """

    TYPE: ClassVar[str] = "jukebox_upsample"
    OSC_ADDRESS: ClassVar[str] = "/riffd/jukebox/upsample"
    OSC_FORMS: ClassVar[tuple[tuple[str, ...], ...]] = (("source",),)
    OSC_OPTIONS: ClassVar[bool] = True

    # An earlier saved job's id, a codes file (.npz, .npy), or audio (path, or samples over ZeroMQ).
    source: AudioSource

    def validate(self) -> None:
        super().validate()
        _check_source("source", self.source)


@dataclass(frozen=True)
class Cancel(Request):
    """Cancel a queued or running job; it ends with an error event of code `cancelled`."""

    TYPE: ClassVar[str] = "cancel"
    OSC_FORMS: ClassVar[tuple[tuple[str, ...], ...]] = (("job",), ("job", "reply_port"))

    job: str

    def validate(self) -> None:
        super().validate()
        check_job_id(self.job)


@dataclass(frozen=True)
class GetStatus(Request):
    """Ask for the daemon's state; answered by a `status` event."""

    TYPE: ClassVar[str] = "status"
    OSC_FORMS: ClassVar[tuple[tuple[str, ...], ...]] = ((), ("reply_port",))


@dataclass(frozen=True)
class ListModels(Request):
    """Ask which models are resident; answered by a `models` event."""

    TYPE: ClassVar[str] = "models"
    OSC_FORMS: ClassVar[tuple[tuple[str, ...], ...]] = ((), ("reply_port",))


@dataclass(frozen=True)
class LoadModel(Request):
    """Load (and warm) a model so later jobs start at once; answered by `ok` or `error`."""

    TYPE: ClassVar[str] = "load"
    OSC_FORMS: ClassVar[tuple[tuple[str, ...], ...]] = (("model",), ("model", "reply_port"))

    model: str

    def validate(self) -> None:
        super().validate()
        _check_text("model", self.model, MAX_MODEL_ID_CHARS)


@dataclass(frozen=True)
class UnloadModel(LoadModel):
    """Release a resident model (jobs running on it finish first)."""

    TYPE: ClassVar[str] = "unload"


@dataclass(frozen=True)
class Subscribe(Request):
    """Send every event to an OSC UDP address: the sender's host unless `host` is given.

    Over OSC with no arguments the sender itself subscribes (its TCP connection, or its UDP
    source address).
    """

    TYPE: ClassVar[str] = "subscribe"
    OSC_FORMS: ClassVar[tuple[tuple[str, ...], ...]] = ((), ("port",), ("host", "port"))

    host: str | None = None
    port: int | None = None

    def validate(self) -> None:
        super().validate()
        _check_text("host", self.host, 255)
        if self.port is not None and not 1 <= self.port <= 65535:
            raise InvalidArgument(f"port must be within [1, 65535], got {self.port}")


@dataclass(frozen=True)
class Unsubscribe(Subscribe):
    """Stop sending events to an address subscribed before."""

    TYPE: ClassVar[str] = "unsubscribe"


@dataclass(frozen=True)
class GetClock(Request):
    """Ask for the daemon's timeline (tempo, beat, phase, Link peers); answered by a `clock` event."""

    TYPE: ClassVar[str] = "clock"
    OSC_FORMS: ClassVar[tuple[tuple[str, ...], ...]] = ((), ("reply_port",))


@dataclass(frozen=True)
class SetTempo(Request):
    """Set the tempo of the Link session (every peer follows) or of the daemon's own timeline.

    The one request that changes a Link session's tempo; answered by a `clock` event.
    """

    TYPE: ClassVar[str] = "tempo"
    OSC_FORMS: ClassVar[tuple[tuple[str, ...], ...]] = (("bpm",), ("bpm", "reply_port"))

    bpm: float

    def validate(self) -> None:
        super().validate()
        check_bpm(self.bpm)


REQUESTS: dict[str, type[Request]] = {
    cls.TYPE: cls
    for cls in (
        Generate, Continue, JukeboxSample, JukeboxUpsample, Cancel, GetStatus, ListModels,
        LoadModel, UnloadModel, Subscribe, Unsubscribe, GetClock, SetTempo,
    )
}
EVENTS: dict[str, type[Event]] = {
    cls.TYPE: cls for cls in (Accepted, Started, Progress, Chunk, Done, Error, Status, Models, Ok, Clock)
}
#: Events that end a job; every job gets exactly one.
TERMINAL_EVENTS = (Done, Error)

__all__ = [
    "EVENTS", "PROTOCOL_VERSION", "REQUESTS", "SAMPLING_FIELDS", "TERMINAL_EVENTS", "Accepted", "Cancel", "Chunk",
    "Clock", "GetClock", "InTime", "SetTempo",
    "Continue", "Done", "Error", "Event", "Generate", "GetStatus", "JobRequest", "JukeboxRequest", "JukeboxSample",
    "JukeboxUpsample",
    "ListModels", "LoadModel", "Models", "MusicGenRequest", "Ok", "Progress", "Request", "Started", "Status",
    "Subscribe", "UnloadModel", "Unsubscribe", "check_job_id",
]
