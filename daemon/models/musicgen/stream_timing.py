"""Where one streamed job's time went: decode steps (early and late in the window) and codec decodes.

Measured where the work happens: on the worker thread, the time spent inside the engine's column
iterator is decoding (each column's step and sampling), the time inside the chunk iterator
beyond that is the codec's; a batched job's steps are timed by whichever thread runs them (each
shared step counts whole for every stream in it). The report travels to clients in the
job's `done` event, so a client (`bench.realtime`) can see what the real-time factor is made of
through a running daemon. The job's log line also splits the late steps by whether a next window's
context rode in them (handoff.py): what a long job's late steps cost beyond its early ones is that
riding and the window's own longer attention, and the line says which is how much.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from daemon.backend import StreamReport

T = TypeVar("T")

#: The first and the last tenth of a window's positions are its "early" and "late" steps.
EDGE_FRACTION = 0.1
#: `timed(step, seconds, riding)`: a window's column `step` took `seconds` to make, in a step that also
#: carried `riding` of the next window's context columns (StepTiming.recorder, StepBatch.columns).
StepTimer = Callable[[int, float, int], None]


class TimedIterator(Generic[T]):
    """An iterator that adds up the time spent producing its items; closing it closes the one it wraps."""

    def __init__(self, inner: Iterator[T]) -> None:
        self._inner = inner
        self.busy_s = 0.0

    def __iter__(self) -> "TimedIterator[T]":
        return self

    def __next__(self) -> T:
        start = time.perf_counter()
        try:
            return next(self._inner)
        finally:
            self.busy_s += time.perf_counter() - start

    def close(self) -> None:
        close = getattr(self._inner, "close", None)
        if close is not None:
            close()


class StepTiming:
    """Decode steps timed by their position in the window; mean step time early and late.

    Means, not medians: a speculative engine delivers columns in bursts (one checking pass, then
    several columns for free), so only a mean says what a step costs.
    """

    def __init__(self, window_frames: int) -> None:
        self.edge = max(1, int(window_frames * EDGE_FRACTION))
        self.late_from = window_frames - self.edge
        self._early: list[float] = []
        self._late_alone: list[float] = []  # the late steps, split by whether a next window's context
        self._late_riding: list[float] = []  # rode in them (handoff.py)
        self.steps = 0
        self.step_s = 0.0
        self.prefill_s = 0.0

    def columns(self, columns: Iterator[T], first_position: int) -> Iterator[T]:
        """Yield `columns` (a window's, its first at cache position `first_position`), timing each step.

        The first column comes with the window's prefill: not a step, so not timed as one.
        """
        record = self.recorder(first_position)
        try:
            start = time.perf_counter()
            for index, column in enumerate(columns):
                record(index, time.perf_counter() - start)
                yield column
                start = time.perf_counter()
        finally:  # a stopped job frees its window's cache now, not at garbage collection
            close = getattr(columns, "close", None)
            if close is not None:
                close()

    def recorder(self, first_position: int) -> StepTimer:
        """`record(index, seconds, riding)` for the window whose column 0 (made by its prefill) sits
        at cache position `first_position`: where the columns are made elsewhere (the shared batch
        step times each column it makes on its own thread, and says how many of the next window's
        context columns rode in it)."""

        def record(index: int, took_s: float, riding: int = 0) -> None:
            if not index:
                self.prefill_s += took_s
                return
            self.steps += 1
            self.step_s += took_s
            position = first_position + index
            if position < self.edge:
                self._early.append(took_s)
            elif position >= self.late_from:
                (self._late_riding if riding else self._late_alone).append(took_s)

        return record

    def report(self, engine: str, decode_s: float, codec_s: float) -> StreamReport:
        return StreamReport(engine=engine, decode_s=decode_s, codec_s=codec_s, steps=self.steps, step_s=self.step_s,
                            prefill_s=self.prefill_s, early_step_ms=_mean_ms(self._early),
                            late_step_ms=_mean_ms(self._late_alone + self._late_riding))

    def late_split(self) -> str | None:
        """The late steps split by whether a next window's context rode in them, in words for the
        job's log (None: no late steps). late/early is the window's own attention and the riding
        together; this says which is how much."""
        late = len(self._late_alone) + len(self._late_riding)
        if not late:
            return None
        parts = [f"{len(steps)} {name} " + (f"{_mean_ms(steps):.2f} ms" if steps else "-")
                 for name, steps in (("alone", self._late_alone), ("with riding columns", self._late_riding))]
        return f"late steps {late}: " + ", ".join(parts)


def _mean_ms(durations: list[float]) -> float | None:
    return 1000 * sum(durations) / len(durations) if durations else None
