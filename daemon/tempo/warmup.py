"""Conform warmed up off the request path: librosa's numba kernels compile once per beat tracker.

The first conform costs seconds more than the next (measured here: 5-8 s on top of a 0.5-1 s
conform, AMD EPYC Zen 4, 2 cores; 6-7 s, and 46 s with numba's disk cache cold, on a Zen 3 with
AVX2): importing librosa's beat module compiles its numba ufuncs (one of them is never cached on
disk), and its stencils compile on first call. That happens in the beat tracker's child process
(`beat_process`), so it never holds the daemon's GIL, but a take or jam must not wait for it either,
so the daemon runs one conform on a synthetic pattern at start when it has a tempo source (`--link`
or `--bpm`), and otherwise when the first request in time arrives (it runs while the take is
generated, which takes longer; a jam plays at its own tempo until it is done).
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np

log = logging.getLogger(__name__)

#: MusicGen's rate; numba compiles per dtype, not per rate, so any rate warms every kernel.
RATE = 32000
BPM = 120.0
BARS = 3


def click_pattern(bpm: float = BPM, bars: int = BARS, sample_rate: int = RATE, quantum: int = 4) -> np.ndarray:
    """A few bars of clicks on the beat and a low thump on each downbeat: float32 `[1, frames]`."""
    beat = int(round(60.0 / bpm * sample_rate))
    frames = beat * (bars * quantum + 1)
    out = np.zeros(frames, np.float32)
    t = np.arange(int(0.06 * sample_rate)) / sample_rate
    click = (np.random.default_rng(0).standard_normal(t.size) * np.exp(-t * 80)).astype(np.float32)
    thump = (np.sin(2 * np.pi * 55 * t) * np.exp(-t * 20)).astype(np.float32)
    for index in range(bars * quantum):
        start = index * beat
        out[start : start + t.size] += 0.5 * click
        if index % quantum == 0:
            out[start : start + t.size] += thump
    return out[None, :]


class ConformWarmup:
    """One conform on a thread of its own, once per process; `start()` any number of times."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._done = threading.Event()
        self.seconds: float | None = None  # how long the warm-up took, once done
        self.error: BaseException | None = None

    @property
    def started(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="riffd-conform-warmup", daemon=True)
                self._thread.start()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Whether the warm-up finished (or failed) within `timeout_s`; False if it never started."""
        return self.started and self._done.wait(timeout_s)

    def _run(self) -> None:
        started = time.perf_counter()
        try:
            from daemon.tempo.conform import conform

            conform(click_pattern(), RATE, BPM, 4)
        except Exception as exc:  # noqa: BLE001 - a failed warm-up only means the first conform is slow
            self.error = exc
            log.warning("conform warm-up failed (the first conform will be slower): %s", exc)
        else:
            self.seconds = time.perf_counter() - started
            log.info("conform warmed up in %.1f s (librosa's numba kernels compiled in the beat tracker)", self.seconds)
        finally:
            self._done.set()


#: The process's warm-up: it warms the process's one beat tracker (`beat_process.BEATS`), which every daemon in it shares.
WARMUP = ConformWarmup()
