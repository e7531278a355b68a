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
from protocol.events import (
    Accepted, Applied, Chunk, Done, Error, Event, Lyric, Models, Ok, Progress, Snapshot, Started, Status,
)
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
#: Integer PCM sample sizes a saved file may ask for (absent: the container's default).
BIT_DEPTHS = (16, 24, 32)
#: The bit_depth that asks for 32-bit float samples (as the CLI's --bit-depth float): what a WAV holds
#: when none is asked for, said outright, and refused for a FLAC rather than written as 24-bit.
FLOAT_DEPTH = "float"
#: What each container stores: FLAC has no 32-bit samples, integer or float.
FORMAT_BIT_DEPTHS: dict[str, tuple[int | str, ...]] = {"wav": (*BIT_DEPTHS, FLOAT_DEPTH), "flac": (16, 24)}
OUTPUT_SAMPLE_RATE_RANGE = (8000, 384000)
MAX_GAIN = 8.0
#: Weighted prompts a jam blends at once.
MAX_JAM_PROMPTS = 8
#: How far ahead of what is played (or delivered) a jam may run, in seconds.
JAM_LEAD_RANGE_S = (0.1, 30.0)
#: What a snapshot keeps of a jam (besides its prompt): a jam_start with resume leaves them out.
JAM_SNAPSHOT_SETTINGS = ("top_k", "top_p", "temperature", "guidance_scale", "seed", "context_s", "window_s")
#: The longest jam window: a MusicGen window (daemon.models.musicgen.loader.MODEL_WINDOW_S, kept equal
#: by a test), so a longer `window_s` is refused with the request, not after the jam has started.
MAX_JAM_WINDOW_S = 30.0

# Job ids end up in file names, so they are kept to a portable, traversal-free alphabet.
_JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def check_job_id(job: str, *, what: str = "job") -> str:
    if not _JOB_ID.fullmatch(job):
        raise InvalidArgument(
            f"{what} {job!r} is not a valid job id (1-64 characters of A-Z a-z 0-9 . _ -, not starting with . _ -)"
        )
    return job


def check_saved_file(fmt: str, sample_rate: int | None, bit_depth: int | str | None, *,
                     rate_name: str = "out_sample_rate") -> None:
    """A saved (or exported) file's container, sample rate and bit depth, checked together so that
    a combination no container stores is refused with the request, not after the job has run."""
    if fmt not in OUTPUT_FORMATS:
        raise InvalidArgument(f"format must be one of {', '.join(OUTPUT_FORMATS)}, got {fmt!r}")
    lo, hi = OUTPUT_SAMPLE_RATE_RANGE
    if sample_rate is not None and not lo <= sample_rate <= hi:
        raise InvalidArgument(f"{rate_name} must be within [{lo}, {hi}] Hz, got {sample_rate}")
    if bit_depth is not None and bit_depth not in (*BIT_DEPTHS, FLOAT_DEPTH):
        raise InvalidArgument(f"bit_depth must be one of {', '.join(map(str, BIT_DEPTHS))} or {FLOAT_DEPTH!r}, "
                              f"got {bit_depth!r}")
    stored = FORMAT_BIT_DEPTHS[fmt]
    if bit_depth is not None and bit_depth not in stored:
        asked = ("32-bit float (it has no float samples: ask for WAV)" if bit_depth == FLOAT_DEPTH
                 else f"{bit_depth}-bit")
        raise InvalidArgument(f"{fmt.upper()} stores {' or '.join(map(str, stored))}-bit samples, not {asked}")


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
    sender's host instead of the port the request came from (Max's [udpsend] and oscsend cannot
    receive on their sending port; Pd's [netsend -u -b] can).
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
    # Saved file's samples: 16, 24 or 32-bit integers, or "float" (32-bit float, WAV only); FLAC: 16 or 24. Absent:
    # float WAV, 24-bit FLAC.
    bit_depth: int | str | None = None
    # Play on the daemon's sound card (default: the daemon's --play setting), at this linear gain. Asked for
    # (true) where that card cannot open, the job ends with playback_unavailable before any audio.
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
        check_saved_file(self.format, self.out_sample_rate, self.bit_depth)


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
    optionally steered by a text prompt. MusicGen continues from at most the audio's last 29.98 s
    (its window less one frame): a longer prompt is trimmed from the front."""

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
    # Same seed, labels and model give the same tokens; absent, the daemon draws one below 1000000
    # (whole in a Pd or Max number box) and reports it in `started`.
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
        _check_text("artist", self.artist, MAX_LABEL_CHARS, empty_ok=True, too_long=PromptTooLong)
        _check_text("genres", self.genres, MAX_LABEL_CHARS, empty_ok=True, too_long=PromptTooLong)
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
    # Send `lyric` events (when each word is sung) as the top level is sampled; needs lyrics and a
    # model conditioned on them.
    lyric_timing: bool = False

    def validate(self) -> None:
        super().validate()
        if not math.isfinite(self.duration_s) or self.duration_s <= 0:
            raise InvalidArgument(f"duration_s must be positive, got {self.duration_s}")
        _check_source("prime", self.prime)
        if self.lyric_timing and not self.lyrics.strip():
            raise InvalidArgument("lyric_timing needs lyrics to time")


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

    # An IP address, or "localhost" (no other names); absent: the sender's host over OSC, 127.0.0.1 over ZeroMQ.
    host: str | None = None
    # The UDP port events go to; absent, over OSC only: the sender's own address (ZeroMQ needs one).
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
    """Set the tempo of the Link session (every peer follows) or of the daemon's own timeline; answered by `clock`.

    The one request that changes a Link session's tempo.
    """

    TYPE: ClassVar[str] = "tempo"
    OSC_FORMS: ClassVar[tuple[tuple[str, ...], ...]] = (("bpm",), ("bpm", "reply_port"))

    bpm: float

    def validate(self) -> None:
        super().validate()
        check_bpm(self.bpm)


# --------------------------------------------------------------------------------------------
# Jams (issue 14): an endless stream, steered while it plays. Its id is its job id; its audio
# comes as the usual chunk events, `offset_samples` contiguous from 0, until it is stopped.


def _check_sampling(top_k: int | None, top_p: float | None, temperature: float | None,
                    guidance_scale: float | None) -> None:
    """The ranges GenerationParams checks, for the controls a jam request sets (absent: unchanged)."""
    defaults = GenerationParams()
    # Greedy would accept any temperature; a jam's temperature must stay valid for sampling.
    GenerationParams(duration_s=1.0, top_k=defaults.top_k if top_k is None else top_k,
                     top_p=defaults.top_p if top_p is None else top_p,
                     temperature=defaults.temperature if temperature is None else temperature,
                     guidance_scale=defaults.guidance_scale if guidance_scale is None else guidance_scale,
                     ).validate(max_duration_s=math.inf)


def check_weights(prompts: tuple[str, ...], weights: tuple[float, ...], *, what: str = "prompts") -> None:
    """Weighted prompts: 1 to MAX_JAM_PROMPTS non-empty texts; weights (one per text, or none for all 1)
    finite, >= 0 and not all zero."""
    if not prompts:
        raise InvalidArgument(f"{what}: give at least one prompt")
    if len(prompts) > MAX_JAM_PROMPTS:
        raise InvalidArgument(f"{what}: {len(prompts)} prompts, more than the {MAX_JAM_PROMPTS} a jam blends")
    for text in prompts:
        _check_text("prompt", text, MAX_PROMPT_CHARS, too_long=PromptTooLong)
        if not text.strip():
            raise InvalidArgument(f"{what}: a prompt is empty (say what the music should be)")
    if weights:
        if len(weights) != len(prompts):
            raise InvalidArgument(f"{what}: {len(weights)} weights for {len(prompts)} prompts (give one each)")
        if any(not math.isfinite(w) or w < 0 for w in weights):
            raise InvalidArgument(f"{what}: weights must be finite and >= 0, got {list(weights)}")
        if not any(w > 0 for w in weights):
            raise InvalidArgument(f"{what}: the weights are all zero; at least one prompt must count")


@dataclass(frozen=True)
class JamStart(JobRequest, InTime):
    """Start a jam: endless music from `prompt`, steered while it plays (`jam_set`, `jam_prompts`).

    Answered by `accepted` and `started`, then chunks (contiguous from offset 0) for as long as it
    runs; `jam_stop` fades it out and ends it with `done`. With `resume`, the jam continues a
    snapshot exactly where it was taken (prompt and sampling controls come from the snapshot).
    In time (`bpm`, `launch`, `conform`; protocol.tempo.InTime) it is conformed to the timeline as
    it plays, its chunks carrying their beats; `bars` and `loop` are for takes.
    """

    TYPE: ClassVar[str] = "jam"
    OSC_ADDRESS: ClassVar[str] = "/riffd/jam/start"
    OSC_FORMS: ClassVar[tuple[tuple[str, ...], ...]] = (("prompt",),)
    OSC_OPTIONS: ClassVar[bool] = True

    # What the music should be (empty only with resume).
    prompt: str
    # Write the whole jam to a file under the daemon's --out (default: no, over OSC too: a jam is endless).
    save: bool | None = field(default=None, kw_only=True)
    top_k: int | None = field(default=None, kw_only=True)
    top_p: float | None = field(default=None, kw_only=True)
    temperature: float | None = field(default=None, kw_only=True)
    guidance_scale: float | None = field(default=None, kw_only=True)
    seed: int | None = field(default=None, kw_only=True)
    # Seconds the jam may run ahead of what has been played (or, not playing, delivered in real
    # time): small, so a change is heard soon (the daemon's --jam-lead-s when absent).
    lead_s: float | None = field(default=None, kw_only=True)
    # Seconds of the jam's own music each new model window starts from (the daemon's --jam-context-s).
    context_s: float | None = field(default=None, kw_only=True)
    # Seconds one model window runs before the jam slides on to the next (at most the model's, 30 s for
    # MusicGen; absent: the model's).
    window_s: float | None = field(default=None, kw_only=True)
    # End by itself after this many seconds of audio (absent: run until stopped, at most --max-jam-s).
    duration_s: float | None = field(default=None, kw_only=True)
    # A snapshot (from jam_snapshot) to continue, sample for sample: its name in --out/jams, or an
    # absolute path in a folder the daemon reads from.
    resume: str | None = field(default=None, kw_only=True)

    def generation_params(self) -> GenerationParams:
        """The jam's sampling controls (duration_s stands for one window; jams have no length)."""
        given = {name: getattr(self, name) for name in ("top_k", "top_p", "temperature", "guidance_scale", "seed")
                 if getattr(self, name) is not None}
        return GenerationParams(duration_s=self.duration_s or 1.0, **given)

    def validate(self) -> None:
        super().validate()
        _check_text("prompt", self.prompt, MAX_PROMPT_CHARS, empty_ok=True, too_long=PromptTooLong)
        _check_text("resume", self.resume, MAX_PATH_CHARS)
        if self.resume is None and not self.prompt.strip():
            raise InvalidArgument("jam: the prompt is empty (say what the music should be)")
        if self.resume is not None:
            # The snapshot holds what shapes the music; only how it is played and kept may differ.
            shaping = [name for name in JAM_SNAPSHOT_SETTINGS if getattr(self, name) is not None]
            if self.prompt or shaping:
                raise InvalidArgument(f"jam: resume continues the snapshot's own prompt and settings; leave out "
                                      f"{', '.join((['prompt'] if self.prompt else []) + shaping)} (change them "
                                      "with jam_set once it plays)")
        _check_sampling(self.top_k, self.top_p, self.temperature, self.guidance_scale)
        self.generation_params().validate(max_duration_s=math.inf)
        lo, hi = JAM_LEAD_RANGE_S
        if self.lead_s is not None and not lo <= self.lead_s <= hi:
            raise InvalidArgument(f"lead_s must be within [{lo:g}, {hi:g}] s, got {self.lead_s}")
        for name in ("context_s", "window_s", "duration_s"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise InvalidArgument(f"{name} must be positive, got {value}")
        if self.window_s is not None and self.window_s > MAX_JAM_WINDOW_S:
            raise InvalidArgument(f"window_s must be at most {MAX_JAM_WINDOW_S:g} s (a MusicGen window), "
                                  f"got {self.window_s}")
        if self.context_s is not None and self.window_s is not None and self.context_s >= self.window_s:
            raise InvalidArgument(f"context_s ({self.context_s}) must be shorter than window_s ({self.window_s})")
        if self.bars is not None or self.loop:
            raise InvalidArgument("jam: bars and loop are for takes (a jam runs until stopped; give duration_s "
                                  "to end it)")
        self.validate_tempo(None)


@dataclass(frozen=True)
class JamSet(Request):
    """Change a running jam's prompt, sampling controls or gain; answered by `applied` once the
    change is in the music (from the next generated frame), or `error` (`not_found` for no such jam).
    A field left out stays as it is."""

    TYPE: ClassVar[str] = "jam_set"
    OSC_ADDRESS: ClassVar[str] = "/riffd/jam/set"
    OSC_FORMS: ClassVar[tuple[tuple[str, ...], ...]] = (("jam",),)
    OSC_OPTIONS: ClassVar[bool] = True

    # The jam's job id.
    jam: str
    # A new prompt (one prompt of weight 1, replacing any weighted ones).
    prompt: str | None = field(default=None, kw_only=True)
    top_k: int | None = field(default=None, kw_only=True)
    top_p: float | None = field(default=None, kw_only=True)
    temperature: float | None = field(default=None, kw_only=True)
    guidance_scale: float | None = field(default=None, kw_only=True)
    # Linear gain on the daemon's sound card (playback only).
    gain: float | None = field(default=None, kw_only=True)
    # Apply from this sample of the jam's audio, not from the next frame (for scripted changes;
    # a sample generated already means the next frame). A gain applies at once. A sample past the
    # jam's end (its duration_s, or --max-jam-s) is refused at once; a change still waiting when
    # the jam is stopped is answered by an error (not_found) before its done.
    at_samples: int | None = field(default=None, kw_only=True)

    def changes(self) -> dict[str, object]:
        """The fields this request changes, by name."""
        return {name: getattr(self, name) for name in JAM_SET_FIELDS if getattr(self, name) is not None}

    def validate(self) -> None:
        super().validate()
        check_job_id(self.jam, what="jam")
        if not self.changes():
            raise InvalidArgument(f"jam_set: nothing to change (give one of {', '.join(JAM_SET_FIELDS)})")
        if self.prompt is not None:
            check_weights((self.prompt,), (), what="jam_set")
        _check_sampling(self.top_k, self.top_p, self.temperature, self.guidance_scale)
        if self.gain is not None and not 0.0 <= self.gain <= MAX_GAIN:
            raise InvalidArgument(f"gain must be within [0, {MAX_GAIN:g}] (linear), got {self.gain}")
        _check_at(self.at_samples)


def _check_at(at_samples: int | None) -> None:
    if at_samples is not None and not 0 <= at_samples < 2**62:
        raise InvalidArgument(f"at_samples must be a sample position >= 0, got {at_samples}")


#: What jam_set can change.
JAM_SET_FIELDS = ("prompt", "top_k", "top_p", "temperature", "guidance_scale", "gain")


@dataclass(frozen=True)
class JamPrompts(Request):
    """Blend weighted prompts in a running jam, e.g. `"dub techno" 0.7 "tabla" 0.3` (weights are
    relative; a prompt without a weight counts 1). Answered by `applied`, or `error`. Over OSC the
    pairs may be followed by options (`... "tabla" 0.3 reply_port 9000`): the first text that names
    one ends the prompts, so a prompt cannot be exactly `reply_port` or `id` there.
    """

    TYPE: ClassVar[str] = "jam_prompts"
    OSC_ADDRESS: ClassVar[str] = "/riffd/jam/prompts"
    OSC_FORMS: ClassVar[tuple[tuple[str, ...], ...]] = (("jam", "prompts"),)
    OSC_PAIRS: ClassVar[tuple[str, str] | None] = ("prompts", "weights")
    OSC_OPTIONS: ClassVar[bool] = True

    # The jam's job id.
    jam: str
    # 1 to 8 prompts.
    prompts: tuple[str, ...]
    # One weight per prompt (>= 0, not all 0), or none for all 1.
    weights: tuple[float, ...] = ()

    def validate(self) -> None:
        super().validate()
        check_job_id(self.jam, what="jam")
        check_weights(self.prompts, self.weights, what="jam_prompts")


@dataclass(frozen=True)
class JamStop(Request):
    """Stop a jam: it fades out and ends with `done` (its saved file, if any, holds everything played).
    Answered by `ok` at once."""

    TYPE: ClassVar[str] = "jam_stop"
    OSC_ADDRESS: ClassVar[str] = "/riffd/jam/stop"
    OSC_FORMS: ClassVar[tuple[tuple[str, ...], ...]] = (("jam",), ("jam", "reply_port"))

    # The jam's job id.
    jam: str

    def validate(self) -> None:
        super().validate()
        check_job_id(self.jam, what="jam")


@dataclass(frozen=True)
class JamSnapshot(Request):
    """Write a running jam's state (context codes, settings, random generator, position) to a file
    under the daemon's --out; answered by a `snapshot` event naming the file and the sample the
    state continues from. `resume FILE` on jam start continues it, sample for sample."""

    TYPE: ClassVar[str] = "jam_snapshot"
    OSC_ADDRESS: ClassVar[str] = "/riffd/jam/snapshot"
    OSC_FORMS: ClassVar[tuple[tuple[str, ...], ...]] = (("jam",),)
    OSC_OPTIONS: ClassVar[bool] = True

    # The jam's job id.
    jam: str
    # File name under --out/jams (absent: JAM-OFFSET.riffdjam).
    name: str | None = field(default=None, kw_only=True)

    def validate(self) -> None:
        super().validate()
        check_job_id(self.jam, what="jam")
        if self.name is not None:
            check_job_id(self.name, what="snapshot name")


REQUESTS: dict[str, type[Request]] = {
    cls.TYPE: cls
    for cls in (
        Generate, Continue, JukeboxSample, JukeboxUpsample, Cancel, GetStatus, ListModels,
        LoadModel, UnloadModel, Subscribe, Unsubscribe, GetClock, SetTempo, JamStart, JamSet, JamPrompts, JamStop,
        JamSnapshot,
    )
}
EVENTS: dict[str, type[Event]] = {
    cls.TYPE: cls for cls in (Accepted, Started, Progress, Chunk, Done, Error, Status, Models, Ok, Clock, Applied,
                              Snapshot, Lyric)
}
#: Events that end a job; every job gets exactly one.
TERMINAL_EVENTS = (Done, Error)

__all__ = [
    "EVENTS", "JAM_SET_FIELDS", "MAX_JAM_PROMPTS", "MAX_JAM_WINDOW_S", "PROTOCOL_VERSION", "REQUESTS", "SAMPLING_FIELDS", "TERMINAL_EVENTS",
    "Accepted", "Applied", "Cancel", "Chunk", "Clock", "GetClock", "InTime", "JamPrompts", "JamSet", "JamSnapshot",
    "JamStart", "JamStop", "SetTempo", "Snapshot", "check_weights",
    "Continue", "Done", "Error", "Event", "Generate", "GetStatus", "JobRequest", "JukeboxRequest", "JukeboxSample",
    "JukeboxUpsample",
    "ListModels", "LoadModel", "Lyric", "Models", "MusicGenRequest", "Ok", "Progress", "Request", "Started", "Status",
    "Subscribe", "UnloadModel", "Unsubscribe", "check_job_id", "check_saved_file",
]
