"""An iterator run on a thread of its own, a bounded number of items ahead of its reader.

A streamed job decodes codes (the engine's steps) and turns them into audio (the codec) on one
thread, one after the other, so its wall time is their sum. Run ahead, the engine steps on while
the reader decodes audio, and the wall time comes near the larger of the two. Both sides spend
most of their time in native code that releases the GIL (riffd's kernels through ctypes, torch's
ops).

The queue between them is bounded (back-pressure: a slow reader holds the producer up, so codes
never pile up); an exception in the producer reaches the reader as itself, where the next item
would have been; closing the reader stops the producer within one item and returns only once its
thread has ended and closed the iterator it ran (so a decode's cache is free when `close` returns).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import closing
from typing import Generic, TypeVar

T = TypeVar("T")


class _End:
    """The producer's iterator is exhausted."""


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class Ahead(Generic[T]):
    """Items of `make()`'s iterator, produced on thread `name` up to `depth` ahead of the reader.

    `make` runs on the producer thread, so all of the iterator's work happens there. `stopped()`
    is true once the reader closed: pass it to the producer's stop checks, so that a producer
    blocked in something long (waiting for admission to a batch) gives up too.
    """

    def __init__(self, make: Callable[[], Iterator[T]], *, depth: int, name: str) -> None:
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        self._make = make
        self._depth = depth
        self._items: deque[T | _End | _Failed] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._finished = False  # the reader saw the end or the error
        self.busy_s = 0.0  # the producer's time inside its iterator (written by the producer only)
        self.wait_s = 0.0  # the reader's time waiting for an item
        self._thread = threading.Thread(target=self._produce, name=name, daemon=True)
        self._thread.start()

    def stopped(self) -> bool:
        return self._closed

    def __iter__(self) -> Ahead[T]:
        return self

    def __next__(self) -> T:
        if self._finished:
            raise StopIteration
        started = time.perf_counter()
        with self._cond:
            while not self._items:
                self._cond.wait()
            item = self._items.popleft()
            self._cond.notify_all()
        self.wait_s += time.perf_counter() - started
        if isinstance(item, _End):
            self._finished = True
            raise StopIteration
        if isinstance(item, _Failed):
            self._finished = True
            raise item.error
        return item

    def close(self) -> None:
        """Stop the producer and wait for its thread to end (within one item of its iterator)."""
        with self._cond:
            self._closed = True
            self._items.clear()
            self._cond.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join()

    def _produce(self) -> None:
        try:
            with closing(self._make()) as items:
                while True:
                    started = time.perf_counter()
                    try:
                        item = next(items)
                    except StopIteration:
                        break
                    finally:
                        self.busy_s += time.perf_counter() - started
                    if not self._put(item):
                        return
            self._put(_End())
        except BaseException as error:  # noqa: BLE001 - handed to the reader, which raises it
            self._put(_Failed(error))

    def _put(self, item: T | _End | _Failed) -> bool:
        """Queue `item` once there is room; False if the reader closed meanwhile."""
        with self._cond:
            while len(self._items) >= self._depth and not self._closed:
                self._cond.wait()
            if self._closed:
                return False
            self._items.append(item)
            self._cond.notify_all()
            return True
