"""Reading audio inputs (any format soundfile reads) and writing WAV/FLAC outputs atomically."""

from __future__ import annotations

import io
import math
import os
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from daemon.audio.resample import resample
from daemon.audio.types import Audio
from daemon.file_mode import publish_mode
from protocol.errors import AudioTooLarge, BadAudio, InvalidArgument

#: Inputs longer than this are refused before they are decoded into memory.
DEFAULT_MAX_INPUT_S = 600.0
_MAX_CHANNELS = 64
_RATE_RANGE = (1000, 768_000)

#: Bit depths users ask for, by the soundfile subtype that stores them.
SUBTYPES = {"16": "PCM_16", "24": "PCM_24", "32": "PCM_32", "float": "FLOAT", "32f": "FLOAT", "f32": "FLOAT"}
_FORMATS = {".wav": "WAV", ".flac": "FLAC"}


def read_audio(path: str | os.PathLike, *, max_duration_s: float = DEFAULT_MAX_INPUT_S) -> Audio:
    """Decode `path` to float32 `[channels, frames]`; BadAudio says what is wrong with it."""
    path = Path(path)
    try:
        is_dir, is_file, readable = path.is_dir(), path.is_file(), os.access(path, os.R_OK)
    except (OSError, ValueError) as exc:  # a name too long for the file system, a NUL byte...
        raise BadAudio(f"audio path {str(path)[:200]!r} is not usable: {_reason(exc)}") from exc
    if is_dir:
        raise BadAudio(f"{path} is a folder, not an audio file")
    if not is_file:
        raise BadAudio(f"audio file {path} does not exist")
    if not readable:
        raise BadAudio(f"audio file {path} cannot be read (permission denied)")
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise BadAudio(f"cannot read audio file {path}: {_reason(exc)}") from exc
    if not _RATE_RANGE[0] <= info.samplerate <= _RATE_RANGE[1]:
        raise BadAudio(f"audio file {path} has an unsupported sample rate of {info.samplerate} Hz")
    if not 1 <= info.channels <= _MAX_CHANNELS:
        raise BadAudio(f"audio file {path} has {info.channels} channels (at most {_MAX_CHANNELS})")
    if info.frames <= 0:
        raise BadAudio(f"audio file {path} is empty")
    if info.frames / info.samplerate > max_duration_s:
        raise AudioTooLarge(f"audio file {path} is {info.frames / info.samplerate:.1f} s long, over the {max_duration_s:g} s limit")
    try:
        data, sample_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise BadAudio(f"cannot decode audio file {path}: {_reason(exc)}") from exc
    if data.shape[0] == 0:
        raise BadAudio(f"audio file {path} is empty")
    if not np.isfinite(data).all():
        raise BadAudio(f"audio file {path} contains NaN or infinite samples")
    return Audio(np.ascontiguousarray(data.T), int(sample_rate))


def write_audio(
    path: str | os.PathLike,
    samples: np.ndarray,
    sample_rate: int,
    *,
    target_sample_rate: int | None = None,
    subtype: str | None = None,
) -> Path:
    """Write float32 `[channels, frames]` as WAV or FLAC (by suffix), resampled if asked.

    The file appears under its final name only once complete (temporary name, then rename).
    By default WAV is 32-bit float and FLAC 24-bit (FLAC has no float format).
    """
    path = Path(path)
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InvalidArgument(f"output {path} must end in .wav or .flac")
    if target_sample_rate is not None and target_sample_rate != sample_rate:
        if not _RATE_RANGE[0] <= target_sample_rate <= _RATE_RANGE[1]:
            raise InvalidArgument(f"sample rate {target_sample_rate} is out of range {_RATE_RANGE}")
        samples = resample(samples, sample_rate, target_sample_rate)
        sample_rate = target_sample_rate
    sf_subtype = parse_subtype(subtype, fmt)
    if sf_subtype.startswith("PCM"):
        samples = np.clip(samples, -1.0, 1.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    except OSError as exc:
        # The temporary name is ours: an error that names it should name the file that was asked for.
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
    try:
        with os.fdopen(fd, "wb", buffering=0) as raw:
            handle = _KeepsWriteErrors(raw)
            try:
                sf.write(handle, np.ascontiguousarray(samples.T), sample_rate, subtype=sf_subtype, format=fmt)
            except (AssertionError, RuntimeError):
                if handle.error is not None:
                    raise handle.error from None  # a full disk is an OSError, not a soundfile assertion
                raise
            os.fsync(raw.fileno())
            publish_mode(raw.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


class _KeepsWriteErrors:
    """An unbuffered file for soundfile's virtual IO that keeps the first OSError of a write.

    soundfile's callbacks cannot raise into libsndfile: a write failing with ENOSPC comes out as
    a short write and an AssertionError. Kept here, the caller raises the real error instead.
    """

    def __init__(self, raw: io.RawIOBase) -> None:
        self._raw = raw
        self.error: OSError | None = None

    def write(self, data: bytes) -> int:
        # A nearly full disk first takes part of a write (a short write, no error); writing the rest
        # is what raises ENOSPC, which is the error to report.
        view, written = memoryview(data), 0
        try:
            while written < len(view):
                count = self._raw.write(view[written:])
                if not count:
                    break
                written += count
        except OSError as exc:
            self.error = self.error or exc
        return written

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()

    def read(self, size: int = -1) -> bytes:
        return self._raw.read(size) or b""


def parse_subtype(subtype: str | None, fmt: str) -> str:
    """Map a bit depth ('16', '24', '32', 'float') or a soundfile subtype name to a subtype of `fmt`."""
    if subtype is None:
        return "FLOAT" if fmt == "WAV" else "PCM_24"
    resolved = SUBTYPES.get(str(subtype).lower(), str(subtype).upper())
    if not sf.check_format(fmt, resolved):
        raise InvalidArgument(f"{fmt} cannot store {subtype!r} samples (try 16, 24{', 32, float' if fmt == 'WAV' else ''})")
    return resolved


def frames_for(duration_s: float, sample_rate: int) -> int:
    """The exact number of frames `duration_s` seconds hold at `sample_rate`."""
    return int(math.floor(duration_s * sample_rate + 0.5))


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__
