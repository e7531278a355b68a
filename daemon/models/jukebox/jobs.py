"""Running a Jukebox job on the worker thread: its inputs read (a prime, a codes file, audio to
upsample), then the backend's two-stage stream."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from daemon.audio.types import AudioChunk
from daemon.backend import JobContext
from daemon.jobs import Job
from daemon.jukebox_jobs import CODES_SUFFIXES, JukeboxJob
from protocol.audio_ref import InlineAudio
from protocol.errors import Unsupported
from protocol.events import Lyric
from protocol.messages import JukeboxRequest, JukeboxSample, JukeboxUpsample

from .codes_file import read_codes

if TYPE_CHECKING:
    from .backend import JukeboxBackend


def run_jukebox_job(backend: JukeboxBackend, job: Job, context: JobContext) -> Iterator[AudioChunk]:
    """Preview chunks, then final ones, for a jukebox_sample or jukebox_upsample job."""
    from .backend import JukeboxControls

    request = job.request
    if not isinstance(request, JukeboxRequest):
        raise Unsupported(f"{backend.model_id} is a Jukebox model: send jukebox_sample or jukebox_upsample "
                          "(generate and continue need a MusicGen model)")

    def yield_or_stop() -> bool:
        context.yield_to_higher()  # a render pauses here (between tokens) for live requests
        return context.should_stop()

    controls = JukeboxControls(artist=request.artist, genres=request.genres, lyrics=request.lyrics,
                               seed=context.seed, temperature=request.temperature, top_k=request.top_k,
                               top_p=request.top_p)
    codes_path = job.codes_path if isinstance(job, JukeboxJob) else None
    if isinstance(request, JukeboxSample):
        emit = context.emit

        def word(index: int, text: str, start_s: float, end_s: float) -> None:
            if emit is not None:
                emit(Lyric(job=job.id, index=index, text=text, start_s=start_s, end_s=end_s))

        return backend.sample(controls, request.duration_s, prime=context.read_audio(request.prime),
                              upsample=request.upsample, codes_path=codes_path,
                              keep_codes=job.codes_sink if isinstance(job, JukeboxJob) else None,
                              progress=context.progress,
                              should_stop=yield_or_stop, checkpoint=context.checkpoint,
                              words=word if request.lyric_timing else None)
    assert isinstance(request, JukeboxUpsample)
    source = request.source
    source_codes = job.source_codes if isinstance(job, JukeboxJob) else None
    source_top = job.source_top if isinstance(job, JukeboxJob) else None
    if source_top is not None or source_codes is not None or \
            (isinstance(source, str) and source.endswith(CODES_SUFFIXES)):
        stored = source_top or read_codes(source_codes or context.resolve_input(str(source)))
        controls = JukeboxControls(artist=request.artist or stored.artist, genres=request.genres or stored.genres,
                                   lyrics=request.lyrics or stored.lyrics, seed=controls.seed,
                                   temperature=request.temperature, top_k=request.top_k, top_p=request.top_p)
        top: np.ndarray = stored.codes
    else:
        audio = context.read_audio(source if isinstance(source, (str, InlineAudio)) else None)
        assert audio is not None
        top = backend.top_codes(audio)
    return backend.upsample(controls, top, progress=context.progress, should_stop=yield_or_stop,
                            checkpoint=context.checkpoint)
