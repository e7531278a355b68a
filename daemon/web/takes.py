"""This daemon session's takes made from the studio: their files, the settings that made them, exports.

The studio serves only files it can find here, by job id: the saved file a web job's `done`
event named, checked to lie under --out. No part of a URL ever becomes a path.
"""

from __future__ import annotations

import io
import os
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from pathlib import Path
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


@dataclass
class Take:
    """One finished web job: where its audio is and how to make it again."""

    job: str
    path: Path
    # The request's fields as the page sent them (type included), for "same again".
    request: dict[str, Any]
    seed: int | None
    frames: int
    sample_rate: int
    created: float = field(default_factory=time.time)

    @property
    def format(self) -> str:
        return self.path.suffix.lstrip(".").lower()

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path)
        data["format"] = self.format
        data["duration_s"] = round(self.frames / self.sample_rate, 3) if self.sample_rate else 0.0
        return data


class Takes:
    """Takes by job id, newest last; bounded."""

    def __init__(self, out_dir: Path) -> None:
        self._out_dir = out_dir.resolve()
        self._takes: OrderedDict[str, Take] = OrderedDict()

    def add(self, take: Take) -> None:
        real = Path(os.path.realpath(take.path))
        if not real.is_relative_to(self._out_dir):
            raise InvalidArgument(f"take {take.job}: {take.path} is outside the output folder")
        take.path = real
        self._takes.pop(take.job, None)
        self._takes[take.job] = take
        while len(self._takes) > MAX_TAKES:
            self._takes.popitem(last=False)

    def get(self, job: str) -> Take:
        take = self._takes.get(job)
        if take is None:
            raise NotFound(f"no take {job!r} in this session")
        if not take.path.is_file():
            raise NotFound(f"take {job}: its file {take.path.name} is gone")
        return take

    def all(self) -> list[Take]:
        return list(self._takes.values())


@dataclass(frozen=True)
class ExportFormat:
    """A download's container, sample rate (None: the take's) and bit depth (None: the format's default)."""

    format: str = "wav"
    sample_rate: int | None = None
    bit_depth: int | None = None

    @classmethod
    def parse(cls, query: dict[str, str]) -> "ExportFormat":
        """From a URL query, validated with the protocol's own limits for saved files."""
        fmt = query.get("format", "wav").lower()
        sample_rate = _int(query, "sample_rate")
        bit_depth = _int(query, "bit_depth")
        check_saved_file(fmt, sample_rate, bit_depth, rate_name="sample_rate")
        return cls(fmt, sample_rate, bit_depth)


def export(take: Take, target: ExportFormat) -> bytes:
    """The take converted to `target` (resampled with riffd's resampler), as file bytes."""
    info = sf.info(str(take.path))
    if info.frames / max(info.samplerate, 1) > MAX_EXPORT_S:
        raise InvalidArgument(f"take {take.job} is too long to convert here; download it as saved")
    data, sample_rate = sf.read(str(take.path), dtype="float32", always_2d=True)
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


def _int(query: dict[str, str], name: str) -> int | None:
    text = query.get(name)
    if text in (None, ""):
        return None
    # ASCII digits only: str.isdigit() also admits "²" or "①", which int() refuses.
    if not (text.isascii() and text.isdigit()) or len(text) > 7:
        raise InvalidArgument(f"{name} must be a whole number, got {text[:20]!r}")
    return int(text)


__all__ = ["ExportFormat", "MEDIA_TYPES", "Take", "Takes", "export"]
