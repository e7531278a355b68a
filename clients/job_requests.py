"""The job requests both clients offer, written once: each builds its request and hands it to the
client's `_stream`, which the sync client answers with a JobStream and the asyncio one with an
AsyncJobStream."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np

from collections.abc import Mapping, Sequence

from protocol.audio_ref import InlineAudio
from protocol.messages import Continue, Generate, JamPrompts, JamStart, JukeboxSample, JukeboxUpsample, Request

StreamT = TypeVar("StreamT")


class JobRequests(Generic[StreamT]):
    """Generate, continue and the Jukebox requests; `_stream(request)` sends one and returns its stream."""

    def _stream(self, request: Request) -> StreamT:
        raise NotImplementedError

    def generate(self, prompt: str, duration_s: float = 8.0, *, model: str | None = None,
                 **options: Any) -> StreamT:
        """Text to music; options are Generate's fields (seed, top_k, job, priority, melody...)."""
        return self._stream(Generate(prompt, float(duration_s), model=model, id=new_id(), **options))

    def continue_(self, audio: str | Path | np.ndarray | InlineAudio, duration_s: float = 8.0, *,
                  prompt: str | None = None, model: str | None = None, sample_rate: int | None = None,
                  **options: Any) -> StreamT:
        """Continue audio by `duration_s` seconds: a path the daemon can read, or samples
        (float32 `[channels, frames]` with `sample_rate`, or InlineAudio) sent with the request."""
        source = audio_source(audio, sample_rate)
        return self._stream(Continue(source, float(duration_s), prompt=prompt, model=model, id=new_id(), **options))

    def jukebox_sample(self, duration_s: float, *, artist: str = "", genres: str = "", lyrics: str = "",
                       prime: str | Path | np.ndarray | InlineAudio | None = None, sample_rate: int | None = None,
                       model: str | None = None, **options: Any) -> StreamT:
        """Jukebox from artist, genres and lyrics (continuing `prime` when given); chunks come as a
        `preview` stage first, then the `final` one. Options are JukeboxSample's fields."""
        source = None if prime is None else audio_source(prime, sample_rate)
        return self._stream(JukeboxSample(duration_s=float(duration_s), artist=artist, genres=genres, lyrics=lyrics,
                                          prime=source, model=model, id=new_id(), **options))

    def jukebox_upsample(self, source: str | Path | np.ndarray | InlineAudio, *, sample_rate: int | None = None,
                         model: str | None = None, **options: Any) -> StreamT:
        """Upsample the top-level codes of an earlier saved job (its id), a codes file, or audio."""
        return self._stream(JukeboxUpsample(source=upsample_source(source, sample_rate), model=model, id=new_id(),
                                            **options))


def audio_source(audio: str | Path | np.ndarray | InlineAudio, sample_rate: int | None = None) -> str | InlineAudio:
    """What a request's audio field holds: an absolute path (the daemon resolves paths from its
    own folder, not ours), or inline samples."""
    if isinstance(audio, InlineAudio):
        return audio
    if isinstance(audio, np.ndarray):
        if sample_rate is None:
            raise TypeError("audio given as an array needs sample_rate")
        return InlineAudio(audio, sample_rate)
    return str(Path(audio).expanduser().resolve())


def upsample_source(source: str | Path | np.ndarray | InlineAudio, sample_rate: int | None = None) -> str | InlineAudio:
    """A jukebox_upsample source: an earlier job's id stays as it is (no folder in it and no such
    file here); a file or samples go as `audio_source` makes them."""
    if isinstance(source, str) and "/" not in source and not Path(source).exists():
        return source
    return audio_source(source, sample_rate)


def new_id() -> str:
    """A request id, unique per request."""
    return uuid.uuid4().hex


def jam_request(prompt: str, *, model: str | None = None, **options: Any) -> JamStart:
    """A jam start with a job id chosen here, so the handle can steer it before `accepted` arrives."""
    options.setdefault("job", f"jam-{uuid.uuid4().hex[:10]}")
    return JamStart(prompt, model=model, id=new_id(), **options)


#: Weighted prompts as the clients take them: {"dub techno": 0.7, "tabla": 0.3}, [("dub techno", 0.7), ...],
#: or plain texts (weight 1 each).
PromptWeights = Mapping[str, float] | Sequence[str | tuple[str, float]]


def prompts_request(jam: str, prompts: PromptWeights) -> JamPrompts:
    if isinstance(prompts, str):
        raise TypeError("prompts() takes several prompts: a mapping of text to weight, or a list")
    pairs: list[tuple[str, float]] = list(prompts.items()) if isinstance(prompts, Mapping) else [
        (item, 1.0) if isinstance(item, str) else (item[0], item[1]) for item in prompts]
    texts = tuple(text for text, _ in pairs)
    weights = tuple(float(weight) for _, weight in pairs)
    return JamPrompts(jam=jam, prompts=texts, weights=weights if any(w != 1.0 for w in weights) else (), id=new_id())
