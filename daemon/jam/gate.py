"""Live first: a render waits between two steps while a jam is short of audio.

Jams run on their own threads beside the worker's renders; on a CPU with few cores both slow down
when they step at once. A jam that has less than half its lead buffered says so here (`hungry`),
and a render polls `wait_while_hungry` between its steps (its should_stop callback), so the
render's steps fill the jam's idle time instead of its deadlines. The wait is bounded: a jam that
cannot keep up even alone must not stop every render for good.
"""

from __future__ import annotations

import threading
import time


class LiveGate:
    def __init__(self, max_wait_s: float = 0.25) -> None:
        self._max_wait_s = max_wait_s
        self._hungry: set[str] = set()
        self._cond = threading.Condition()

    def hungry(self, jam: str, hungry: bool) -> None:
        with self._cond:
            if hungry:
                self._hungry.add(jam)
            elif jam in self._hungry:
                self._hungry.discard(jam)
                self._cond.notify_all()

    @property
    def any_hungry(self) -> bool:
        with self._cond:
            return bool(self._hungry)

    def wait_while_hungry(self) -> float:
        """Wait (at most max_wait_s) until no jam is hungry; the seconds waited."""
        started = time.monotonic()
        with self._cond:
            self._cond.wait_for(lambda: not self._hungry, timeout=self._max_wait_s)
        return time.monotonic() - started
