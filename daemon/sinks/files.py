"""Audio files under `--out`: one WAV per chunk for OSC listeners, and the whole job when saved.

Every file is written completely under a temporary name and then renamed
(`daemon.audio.io.write_audio`), so a listener told about a path always finds a whole file,
and a job that fails or is cancelled leaves nothing under its final name.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from daemon.audio.io import parse_subtype, write_audio
from daemon.audio.types import AudioChunk
from daemon.jobs import Job
from daemon.paths import PathPolicy
from daemon.sinks.streaming_file import StreamingFileWriter
from protocol.errors import OutputError

log = logging.getLogger(__name__)


class FileSink:
    """Writes one job's chunk files (when someone wants them) and its saved file."""

    def __init__(self, job: Job, out_dir: Path, sample_rate: int, channels: int) -> None:
        request = job.request
        self._job = job
        self._out_dir = out_dir
        self._paths = PathPolicy(out_dir)
        self._sample_rate = sample_rate
        self._channels = channels
        self._save_path = out_dir / f"{job.id}.{request.format}" if job.save else None
        self._subtype = None if request.bit_depth is None else str(request.bit_depth)
        if self._save_path is not None:
            # Refuse an impossible format now, not after minutes of generation.
            parse_subtype(self._subtype, request.format.upper())
        self._blocks: list[np.ndarray] = []
        # A jam has no end: its saved file is written as it plays, not held in memory.
        self._streaming = (StreamingFileWriter(self._paths.output(self._save_path), sample_rate, channels,
                                               target_sample_rate=request.out_sample_rate, subtype=self._subtype)
                           if self._save_path is not None and job.jam is not None else None)

    def write(self, chunk: AudioChunk) -> str | None:
        final = chunk.stage == "final"
        if self._save_path is not None and final:  # a Jukebox preview is sent, not saved
            if self._streaming is not None:
                self._streaming.write(chunk.audio)
            else:
                self._blocks.append(chunk.audio)
        if not (self._job.request.chunks and self._job.wants_chunk_files()):
            return None
        name = "chunk" if final else chunk.stage  # each stage counts its own index from 0
        path = self._paths.output(self._out_dir / self._job.id / f"{name}-{chunk.index:05d}.wav")
        _write(path, chunk.audio, chunk.sample_rate)
        return str(path)

    def finish(self) -> str | None:
        if self._save_path is None:
            return None
        if self._streaming is not None:
            return str(self._streaming.finish())
        audio = np.concatenate(self._blocks, axis=1) if self._blocks else np.zeros((self._channels, 0), np.float32)
        self._blocks = []
        _write(self._paths.output(self._save_path), audio, self._sample_rate, target_sample_rate=self._job.request.out_sample_rate,
               subtype=self._subtype)
        return str(self._save_path)

    def abort(self) -> None:
        # The saved file is only ever written whole by finish(); chunk files already sent stay.
        self._blocks = []
        if self._streaming is not None:
            self._streaming.abort()


def _write(path: Path, audio: np.ndarray, sample_rate: int, **options: object) -> None:
    try:
        write_audio(path, audio, sample_rate, **options)  # type: ignore[arg-type]
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc


class FileSinkFactory:
    """Gives every job a FileSink under `out_dir` (created on first use)."""

    def __init__(self, out_dir: Path) -> None:
        self._out_dir = out_dir

    def __call__(self, job: Job, sample_rate: int, channels: int) -> FileSink | None:
        if not job.save and not job.request.chunks:
            return None
        return FileSink(job, self._out_dir, sample_rate, channels)
