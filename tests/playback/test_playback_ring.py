"""The lock-free frame ring: wrap-around, full and empty, and one producer racing one consumer."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from daemon.audio.playback.ring import FrameRing


def test_write_read_wraps_around_and_respects_capacity() -> None:
    ring = FrameRing(5, 2)
    data = np.arange(16, dtype=np.float32).reshape(8, 2)
    assert ring.write(data[:3]) == 3
    out = np.zeros((2, 2), np.float32)
    assert ring.read_into(out) == 2
    np.testing.assert_array_equal(out, data[:2])
    # 1 frame left in the ring; 4 free slots, and the write wraps past the end of the buffer.
    assert ring.writable_frames == 4
    assert ring.write(data[3:]) == 4
    assert ring.write(data[7:]) == 0  # full
    out = np.zeros((8, 2), np.float32)
    assert ring.read_into(out) == 5
    np.testing.assert_array_equal(out[:5], data[2:7])
    assert ring.read_into(out) == 0  # empty
    assert ring.readable_frames == 0


def test_bad_size_is_refused() -> None:
    with pytest.raises(ValueError):
        FrameRing(0, 2)


def test_one_producer_one_consumer_lose_and_duplicate_nothing() -> None:
    ring = FrameRing(97, 1)  # a prime size so that copies split at every offset
    total = 30_000
    source = np.arange(total, dtype=np.float32)[:, None]
    received = np.full((total, 1), -1.0, dtype=np.float32)

    def produce() -> None:
        sent = 0
        rng = np.random.default_rng(1)
        while sent < total:
            count = ring.write(source[sent : sent + int(rng.integers(1, 64))])
            sent += count
            if count == 0:
                time.sleep(0)  # full: let the consumer run instead of spinning out the GIL slice

    producer = threading.Thread(target=produce)
    producer.start()
    got = 0
    rng = np.random.default_rng(2)
    scratch = np.zeros((64, 1), np.float32)
    while got < total:
        count = ring.read_into(scratch[: int(rng.integers(1, 64))])
        received[got : got + count] = scratch[:count]
        got += count
        if count == 0:
            time.sleep(0)
    producer.join(timeout=30)
    np.testing.assert_array_equal(received, source)
