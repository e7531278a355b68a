"""This daemon session's takes made from the studio: their files, the settings that made them, exports.

The studio serves only files it can find here, by job id: the saved file a web job's `done`
event named, checked to lie under --out. No part of a URL ever becomes a path.
"""

from __future__ import annotations

import io
import os
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from stat import S_ISREG
from typing import Any

import numpy as np
import soundfile as sf

from daemon.audio.io import parse_subtype
from daemon.audio.resample import resample
from protocol.errors import InvalidArgument, NotFound
from protocol.messages import check_saved_file

#: Takes remembered per daemon session (the oldest are forgotten, their files stay on disk).
MAX_TAKES = 200
#: The longest take an export converts (in memory; a take is at most --max-duration-s anyway).
MAX_EXPORT_S = 3600.0
MEDIA_TYPES = {"wav": "audio/wav", "flac": "audio/flac"}


class TakeReplaced(NotFound):
    """The take's file now holds another job's audio: a later job (any client's) reused its id."""


@dataclass(frozen=True)
class FileIdentity:
    """Tells the file a take saved from one written later under the same name. A later save is
    renamed into place (a new inode) and rewritten (a new mtime, mostly a new size): any of them
    differing means another job's audio, even within one tick of the file system's clock."""

    inode: int
    size_bytes: int
    mtime_ns: int

    @classmethod
    def of(cls, stat: os.stat_result) -> "FileIdentity":
        return cls(stat.st_ino, stat.st_size, stat.st_mtime_ns)


@dataclass
class Take:
    """One finished web job: where its audio is, what the file holds, and how to make it again."""

    job: str
    path: Path
    # The request's fields as the page sent them (type included), for "same again".
    request: dict[str, Any]
    seed: int | None
    # The saved file's header (with out_sample_rate it is not the rate the model streamed at).
    frames: int
    sample_rate: int
    subtype: str
    identity: FileIdentity
    created: float = field(default_factory=time.time)

    @property
    def format(self) -> str:
        return self.path.suffix.lstrip(".").lower()

    def to_json(self, *, replaced: bool = False) -> dict[str, Any]:
        return {"job": self.job, "path": str(self.path), "request": self.request, "seed": self.seed,
                "frames": self.frames, "sample_rate": self.sample_rate, "subtype": self.subtype,
                "created": self.created, "format": self.format, "replaced": replaced,
                "duration_s": round(self.frames / self.sample_rate, 3) if self.sample_rate else 0.0}


class Takes:
    """Takes by job id, newest last; bounded."""

    def __init__(self, out_dir: Path) -> None:
        self._out_dir = out_dir.resolve()
        self._takes: OrderedDict[str, Take] = OrderedDict()

    def add(self, job: str, path: Path, *, request: dict[str, Any], seed: int | None) -> Take:
        """Remember the file a web job saved (its `done` named it) as it is now."""
        real = Path(os.path.realpath(path))
        if not real.is_relative_to(self._out_dir):
            raise InvalidArgument(f"take {job}: {path} is outside the output folder")
        try:
            identity = FileIdentity.of(real.stat())
            info = sf.info(str(real))
        except (OSError, RuntimeError) as exc:  # soundfile's errors are RuntimeErrors
            raise NotFound(f"take {job}: its file {real.name} cannot be read ({exc})") from None
        take = Take(job=job, path=real, request=request, seed=seed, frames=info.frames, sample_rate=info.samplerate,
                    subtype=info.subtype, identity=identity)
        self._takes.pop(job, None)
        self._takes[job] = take
        while len(self._takes) > MAX_TAKES:
            self._takes.popitem(last=False)
        return take

    def get(self, job: str) -> Take:
        """The take, if its file is still the one it saved (TakeReplaced, NotFound otherwise)."""
        take = self._takes.get(job)
        if take is None:
            raise NotFound(f"no take {job!r} in this session")
        _check_identity(take, _stat(take))
        return take

    def replaced(self, job: str) -> bool:
        """Whether another job's file now lies where take `job` saved its own."""
        try:
            self.get(job)
        except TakeReplaced:
            return True
        except NotFound:
            pass  # unknown or gone is not replaced: a download says which
        return False

    def all(self) -> list[Take]:
        return list(self._takes.values())


def _stat(take: Take) -> os.stat_result:
    try:
        status = take.path.stat()
    except OSError:
        status = None
    if status is None or not S_ISREG(status.st_mode):
        raise NotFound(f"take {take.job}: its file {take.path.name} is gone")
    return status


def _check_identity(take: Take, status: os.stat_result) -> None:
    if FileIdentity.of(status) != take.identity:
        raise TakeReplaced(f"take {take.job}: its file was replaced by a later job with the same id "
                           f"({take.path.name} now holds that job's audio)")


@dataclass(frozen=True)
class ExportFormat:
    """A download's container, sample rate (None: the take's) and bit depth (None: the format's default)."""

    format: str = "wav"
    sample_rate: int | None = None
    bit_depth: int | str | None = None

    @classmethod
    def parse(cls, query: dict[str, str]) -> "ExportFormat":
        """From a URL query, validated with the protocol's own limits for saved files."""
        fmt = query.get("format", "wav").lower()
        sample_rate = _int(query, "sample_rate")
        bit_depth = _bit_depth(query)
        check_saved_file(fmt, sample_rate, bit_depth, rate_name="sample_rate")
        return cls(fmt, sample_rate, bit_depth)


def export(take: Take, target: ExportFormat) -> bytes:
    """The take converted to `target` (resampled with riffd's resampler), as file bytes.

    The file is checked to be the take's once it is open, so what is converted is that file even
    when a job with the same id saves another in the meantime (TakeReplaced then)."""
    with open(take.path, "rb") as handle:
        _check_identity(take, os.fstat(handle.fileno()))
        info = sf.info(handle)
        if info.frames / max(info.samplerate, 1) > MAX_EXPORT_S:
            raise InvalidArgument(f"take {take.job} is too long to convert here; download it as saved")
        handle.seek(0)
        data, sample_rate = sf.read(handle, dtype="float32", always_2d=True)
    samples = np.ascontiguousarray(data.T)
    if target.sample_rate is not None and target.sample_rate != sample_rate:
        samples = resample(samples, sample_rate, target.sample_rate)
        sample_rate = target.sample_rate
    container = target.format.upper()
    subtype = parse_subtype(None if target.bit_depth is None else str(target.bit_depth), container)
    if subtype.startswith("PCM"):
        samples = np.clip(samples, -1.0, 1.0)
    buffer = io.BytesIO()
    sf.write(buffer, samples.T, sample_rate, subtype=subtype, format=container)
    return buffer.getvalue()


def _bit_depth(query: dict[str, str]) -> int | str | None:
    """As a request's bit_depth: a number (digits of any script go to _int, which says which it reads), or a
    word (check_saved_file takes "float" and says what else it would)."""
    text = query.get("bit_depth")
    if text and not text.isdigit():
        return text[:20]
    return _int(query, "bit_depth")


def _int(query: dict[str, str], name: str) -> int | None:
    text = query.get(name)
    if text in (None, ""):
        return None
    # ASCII digits only: str.isdigit() also admits "²" or "①", which int() refuses.
    if not (text.isascii() and text.isdigit()) or len(text) > 7:
        raise InvalidArgument(f"{name} must be a whole number, got {text[:20]!r}")
    return int(text)


__all__ = ["ExportFormat", "FileIdentity", "MEDIA_TYPES", "Take", "TakeReplaced", "Takes", "export"]
