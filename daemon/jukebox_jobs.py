"""Jukebox requests as jobs, on the handler's side: the inputs a request names are checked and
resolved before it queues.

The handler builds a `JukeboxJob` (it knows the output folder: where a saved sample keeps its
top-level codes, and which codes file an upsample's job id names); the Jukebox backend runs it
(`daemon.models.jukebox.jobs`) with the runner's audio reader and path check, so Jukebox inputs
obey the same limits and folders as MusicGen's. Importing this module does not import torch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from daemon.jobs import Job
from protocol.audio_ref import AudioSource
from protocol.errors import DurationTooLong, NotFound
from protocol.messages import JukeboxRequest, JukeboxSample, JukeboxUpsample, check_job_id
from protocol.params import GenerationParams

if TYPE_CHECKING:
    from daemon.models.jukebox.codes_file import TopCodes

#: The model a Jukebox request without `model` gets when no Jukebox model is the default or resident.
DEFAULT_JUKEBOX_MODEL = "openai/jukebox-1b-lyrics"
#: Suffixes of files holding top-level codes rather than audio.
CODES_SUFFIXES = (".npz", ".npy")


@dataclass(eq=False)
class JukeboxJob(Job):
    """A Jukebox job and the files under --out the handler resolved for it."""

    # A saved jukebox_sample keeps its top-level codes here (for a later jukebox_upsample).
    codes_path: Path | None = None
    # jukebox_upsample whose source named an earlier job: that job's codes file.
    source_codes: Path | None = None
    # On a cluster worker (issue 19), which cannot read or write the front's files: the codes to
    # upsample, read by the front, and where a sampled job's codes go (sent back to the front).
    source_top: TopCodes | None = None
    codes_sink: Callable[[TopCodes], None] | None = None


def codes_path_for(out_dir: Path, job_id: str) -> Path:
    """Where a saved jukebox_sample job keeps its top-level codes (`daemon.models.jukebox.codes_file`)."""
    return out_dir / f"{job_id}.codes.npz"


def default_jukebox_model(default_model: str, loaded: Iterable[str]) -> str:
    """The model of a Jukebox request that names none: the daemon's default if it is a Jukebox,
    else the first resident Jukebox, else OpenAI's 1b lyrics model."""
    from daemon.models.registry import is_jukebox

    for model_id in (default_model, *loaded):
        if is_jukebox(model_id):
            return model_id
    return DEFAULT_JUKEBOX_MODEL


def new_jukebox_job(request: JukeboxRequest, *, out_dir: Path, max_duration_s: float,
                    check_source: Callable[[AudioSource], None], default_model: Callable[[], str],
                    **job_fields: Any) -> JukeboxJob:
    """A job for `request`, its inputs checked now (paths, limits, an earlier job's codes) so a bad
    request is refused before it waits in the queue behind hours of rendering.

    The model: the request's, else (upsampling an earlier job) the one that sampled the codes,
    else `default_model()`.
    """
    codes_path = source_codes = None
    model = request.model
    duration_s = 0.0  # an upsample's length is its codes'; the backend checks it
    if isinstance(request, JukeboxSample):
        duration_s = request.duration_s
        if duration_s > max_duration_s:
            raise DurationTooLong(f"duration_s {duration_s} is over the maximum of {max_duration_s} s")
        if request.prime is not None:
            check_source(request.prime)
        if job_fields.get("save"):
            codes_path = codes_path_for(out_dir, job_fields["id"])
    elif isinstance(request, JukeboxUpsample):
        if is_job_reference(request.source):
            job_id = check_job_id(str(request.source), what="source job")
            source_codes = codes_path_for(out_dir, job_id)
            if not source_codes.is_file():
                raise NotFound(f"no codes of a job {job_id!r} under the output folder (a jukebox_sample job "
                               f"keeps them as {source_codes.name} when it is saved)")
            model = model or _sampled_by(source_codes)
        else:
            check_source(request.source)
    # The seed travels in the job's params, as a MusicGen job's does (the runner draws one when None).
    params = GenerationParams(duration_s=duration_s, seed=request.seed)
    return JukeboxJob(request=request, model=model or default_model(), params=params,
                      codes_path=codes_path, source_codes=source_codes, **job_fields)


def _sampled_by(codes_file: Path) -> str | None:
    """The model a codes file says sampled it (None when it does not say or cannot be read: the
    worker reports an unreadable file when it reads the codes)."""
    try:
        with np.load(codes_file, allow_pickle=False) as data:
            return (str(data["model"]) or None) if "model" in data else None
    except (OSError, ValueError):
        return None


def is_job_reference(source: AudioSource) -> bool:
    """An upsample source naming an earlier job by id rather than a file (no folder in it)."""
    return isinstance(source, str) and "/" not in source and "\\" not in source and not source.endswith(CODES_SUFFIXES)
