"""The decode running ahead of the codec on a thread of its own (`MusicGen(codec_thread=True)`,
`ahead.Ahead`): the very same chunks as one thread; errors, stops and closing reach both threads.
"""

from __future__ import annotations

import dataclasses
import threading
import time

import numpy as np
import pytest

from daemon.models.musicgen.ahead import Ahead
from daemon.models.musicgen.backend import MusicGen
from daemon.models.musicgen.options import EngineOptions
from daemon.models.musicgen.streaming_codec import StreamSettings
from protocol.errors import Cancelled
from protocol.params import GenerationParams

SETTINGS = StreamSettings(first_chunk_frames=1, chunk_frames=20)
# Windows of 60 frames continuing the last 20: 2.5 s crosses window seams.
PARAMS = GenerationParams(duration_s=2.5, seed=5, top_k=50, extend_stride_s=0.8)


def _model(bundle, *, codec_thread: bool) -> MusicGen:
    return MusicGen(dataclasses.replace(bundle, window_frames=60), engine=EngineOptions(warmup=False),
                    stream_settings=SETTINGS, codec_thread=codec_thread)


def _decode_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("decode")]


@pytest.mark.parametrize("batched", [False, True])
def test_chunks_are_the_very_same_with_the_codec_thread(load_preset, batched):
    bundle = load_preset("debug/musicgen").bundle
    runs = {}
    for codec_thread in (False, True):
        model = _model(bundle, codec_thread=codec_thread)
        steps: list[int] = []
        chunks = list(model.stream("a long drone", PARAMS, progress=lambda done, total, seen=steps: seen.append(done),
                                   batched=batched, label="job"))
        runs[codec_thread] = chunks, steps
    (alone, alone_steps), (ahead, ahead_steps) = runs[False], runs[True]
    assert [(c.index, c.offset_samples, c.frames) for c in ahead] == [(c.index, c.offset_samples, c.frames) for c in alone]
    for one, other in zip(alone, ahead, strict=True):
        np.testing.assert_array_equal(one.audio, other.audio)
    assert ahead_steps == alone_steps and ahead_steps[-1] > 60  # every step counted, across windows
    assert not _decode_threads()


def test_should_stop_stops_the_decode_thread_and_the_job(load_preset):
    model = _model(load_preset("debug/musicgen").bundle, codec_thread=True)
    steps: list[int] = []
    with pytest.raises(Cancelled):
        for _ in model.stream("drums", PARAMS, progress=lambda done, total: steps.append(done),
                              should_stop=lambda: len(steps) >= 70):
            pass
    assert steps[-1] == 70  # the decode thread stopped within its step
    assert model.engine.live_caches == 0 and not _decode_threads()


def test_closing_the_stream_stops_the_decode_thread_and_frees_the_cache(load_preset):
    model = _model(load_preset("debug/musicgen").bundle, codec_thread=True)
    stream = model.stream("drums", PARAMS)
    next(stream)
    next(stream)
    assert len(_decode_threads()) == 1
    stream.close()
    assert model.engine.live_caches == 0 and not _decode_threads()
    assert sum(c.frames for c in model.stream("drums", dataclasses.replace(PARAMS, duration_s=0.5))) == 16000


def test_an_error_in_the_decode_thread_reaches_the_job(load_preset, monkeypatch):
    model = _model(load_preset("debug/musicgen").bundle, codec_thread=True)
    steps = 0
    real_step = model.engine.decoder.step

    def failing_step(*args, **kwargs):
        nonlocal steps
        steps += 1
        if steps == 30:
            raise RuntimeError("the kernel broke")
        return real_step(*args, **kwargs)

    monkeypatch.setattr(model.engine.decoder, "step", failing_step)
    stream = model.stream("drums", PARAMS)
    with pytest.raises(RuntimeError, match="the kernel broke"):
        for _ in stream:
            pass
    assert model.engine.live_caches == 0 and not _decode_threads()


# Ahead on its own: the queue's bound, errors and closing.
def test_ahead_runs_at_most_depth_items_ahead_and_keeps_order():
    made: list[int] = []

    def numbers():
        for n in range(50):
            made.append(n)
            yield n

    ahead = Ahead(numbers, depth=4, name="decode test")
    time.sleep(0.2)
    assert len(made) <= 5  # four queued, one more made and waiting for room
    assert list(ahead) == list(range(50))


def test_ahead_raises_the_producers_error_where_its_item_would_be():
    def failing():
        yield 1
        yield 2
        raise ValueError("broken")

    ahead = Ahead(failing, depth=8, name="decode test")
    assert next(ahead) == 1 and next(ahead) == 2
    with pytest.raises(ValueError, match="broken"):
        next(ahead)
    with pytest.raises(StopIteration):
        next(ahead)


def test_closing_ahead_stops_and_closes_the_producer():
    closed = threading.Event()

    def endless():
        try:
            n = 0
            while True:
                yield n
                n += 1
        finally:
            closed.set()

    ahead = Ahead(endless, depth=2, name="decode test")
    assert next(ahead) == 0
    assert not ahead.stopped()
    ahead.close()
    assert ahead.stopped() and closed.is_set()
    assert not _decode_threads()


def test_codec_thread_flag_reaches_the_loaded_model(riffd_cache):
    import argparse

    from daemon.config import add_arguments, config_from_args
    from daemon.models.registry import load_backend

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert config_from_args(parser.parse_args(["--codec-thread"])).codec_thread is True
    assert config_from_args(parser.parse_args([])).codec_thread is False
    backend = load_backend("debug/musicgen", device="cpu", cache_dir=riffd_cache, engine="int8+nowarmup",
                           codec_thread=True)
    assert isinstance(backend, MusicGen) and backend.codec_thread
