"""Beat tracking in a child process: librosa and its numba kernels never run under the daemon's GIL.

Importing librosa's beat tracker compiles numba kernels (one of them is never cached on disk):
6-7 s of CPU on a 2-core AMD EPYC Zen 3 (AVX2) with numba's disk cache warm, 46 s with it cold
(2026-12-07). numba's compiler is Python, so in the daemon's process it held the GIL for those
seconds, and a jam playing meanwhile (the first jam in time, which starts conform's warm-up) ran
dry: 2 to 43 underruns per run of tests/playback/test_playback_jam.py's in-time jam on that CPU,
none with the warm-up done before. Here the tracking runs in a child on the other core; the daemon
only waits for the beats while it pickles a few seconds of audio across a pipe.

One child per process (`BEATS`), started on first use and again if it dies; a request at a time.
Its stdin and stdout carry length-prefixed pickles; anything the libraries print goes to stderr.
"""

from __future__ import annotations

import logging
import os
import pickle
import struct
import subprocess
import sys
import threading
from typing import IO, Any

import numpy as np

from daemon.tempo.conform import BeatGrid, track_beats

log = logging.getLogger(__name__)

_LENGTH = struct.Struct("<Q")
#: The child's libraries are single-threaded where it matters; their pools would only contend with
#: the decode threads for the machine's cores.
CHILD_ENVIRONMENT = {"OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                     "OPENBLAS_NUM_THREADS": "1"}


class BeatProcessError(RuntimeError):
    """The beat tracker's child process could not be started or died during a request."""


def _send(stream: IO[bytes], value: object) -> None:
    payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_LENGTH.pack(len(payload)))
    stream.write(payload)
    stream.flush()


def _receive(stream: IO[bytes]) -> Any:
    header = stream.read(_LENGTH.size)
    if len(header) < _LENGTH.size:
        raise EOFError("the stream ended")
    (size,) = _LENGTH.unpack(header)
    payload = stream.read(size)
    if len(payload) < size:
        raise EOFError("the stream ended inside a message")
    return pickle.loads(payload)  # noqa: S301 - our own child, over its own pipe


class BeatProcess:
    """`track(...)` is `conform.track_beats(...)`, run in the child."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # one request at a time on the pipe
        self._child: subprocess.Popen[bytes] | None = None

    def track(self, samples: np.ndarray, sample_rate: int, target_bpm: float, quantum: int, *,
              known_bpm: float | None = None) -> BeatGrid:
        request = (np.ascontiguousarray(samples, dtype=np.float32), sample_rate, target_bpm, quantum, known_bpm)
        with self._lock:
            child = self._running()
            assert child.stdin is not None and child.stdout is not None
            try:
                _send(child.stdin, request)
                ok, value = _receive(child.stdout)
            except (OSError, EOFError, pickle.UnpicklingError) as exc:
                code = self._stop()
                raise BeatProcessError(f"the beat tracker process ended (exit status {code}): {exc}") from exc
        if not ok:
            raise value  # the tracker's own exception, as track_beats raised it
        return value

    def close(self) -> None:
        """End the child (it also ends by itself when this process's end of the pipe closes)."""
        with self._lock:
            self._stop()

    def _running(self) -> subprocess.Popen[bytes]:
        if self._child is None or self._child.poll() is not None:
            try:
                self._child = subprocess.Popen(
                    [sys.executable, "-m", "daemon.tempo.beat_process"], stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE, env={**os.environ, **CHILD_ENVIRONMENT})
            except OSError as exc:
                raise BeatProcessError(f"cannot start the beat tracker process: {exc}") from exc
            log.debug("beat tracker process %d started", self._child.pid)
        return self._child

    def _stop(self) -> int | None:
        child, self._child = self._child, None
        if child is None:
            return None
        for stream in (child.stdin, child.stdout):
            if stream is not None:
                stream.close()
        try:
            return child.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            child.kill()
            return child.wait()


#: The process's beat tracker (conform and the stream conform of every jam share it).
BEATS = BeatProcess()


def serve(requests: IO[bytes], answers: IO[bytes]) -> None:
    """The child's loop: a request in, its BeatGrid (or the exception) out, until the pipe closes."""
    while True:
        try:
            samples, sample_rate, target_bpm, quantum, known_bpm = _receive(requests)
        except EOFError:
            return
        try:
            answer: tuple[bool, object] = (True, track_beats(samples, sample_rate, target_bpm, quantum,
                                                             known_bpm=known_bpm))
        except Exception as exc:  # noqa: BLE001 - the parent raises it as the tracker's own error
            answer = (False, exc)
        _send(answers, answer)


def main() -> None:
    # The pipe to the parent is a private copy of stdout; stdout itself goes to stderr, so nothing
    # a library prints can corrupt a message.
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    serve(sys.stdin.buffer, answers)


if __name__ == "__main__":
    main()
