"""A saved file written as the audio comes, for jobs without an end (jams): memory stays flat for hours.

The file grows under a temporary name and is renamed to its final name only when the job ends well,
as `daemon.audio.io.write_audio` does for a whole take; resampled to the asked rate with one
continuous resampler, so block edges do not click.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from daemon.audio.io import parse_subtype
from daemon.audio.resample import StreamResampler
from daemon.file_mode import publish_mode
from protocol.errors import OutputError

_FORMATS = {".wav": "WAV", ".flac": "FLAC"}


class StreamingFileWriter:
    """Appends `[channels, frames]` float32 blocks to `path` (WAV or FLAC by suffix)."""

    def __init__(self, path: Path, sample_rate: int, channels: int, *, target_sample_rate: int | None = None,
                 subtype: str | None = None) -> None:
        fmt = _FORMATS[path.suffix.lower()]
        self.path = path
        rate = target_sample_rate or sample_rate
        self._subtype = parse_subtype(subtype, fmt)
        self._resampler = StreamResampler(sample_rate, rate, channels)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, self._temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
        os.close(handle)
        try:
            self._file = sf.SoundFile(self._temporary, "w", samplerate=rate, channels=channels,
                                      subtype=self._subtype, format=fmt)
        except (RuntimeError, OSError) as exc:
            Path(self._temporary).unlink(missing_ok=True)
            raise OutputError(f"cannot write {path}: {exc}") from exc

    def write(self, audio: np.ndarray) -> None:
        self._append(self._resampler.push(audio))

    def finish(self) -> Path:
        """Flush, close and move into place."""
        self._append(self._resampler.push(np.zeros((self._file.channels, 0), np.float32), last=True))
        self._file.close()
        publish_mode(self._temporary)
        os.replace(self._temporary, self.path)
        return self.path

    def abort(self) -> None:
        if not self._file.closed:
            self._file.close()
        Path(self._temporary).unlink(missing_ok=True)

    def _append(self, samples: np.ndarray) -> None:
        if not samples.shape[1]:
            return
        if self._subtype.startswith("PCM"):
            samples = np.clip(samples, -1.0, 1.0)
        try:
            self._file.write(np.ascontiguousarray(samples.T))
        except (RuntimeError, OSError) as exc:
            raise OutputError(f"cannot write {self.path}: {exc}") from exc
