"""stream()'s report: decode and codec time, and the mean step early and late in the window, as measured."""

from __future__ import annotations

import dataclasses
import logging
import re
import time

import pytest

from daemon.models.musicgen import backend as backend_module
from daemon.models.musicgen.backend import MusicGen
from daemon.models.musicgen.options import EngineOptions
from daemon.models.musicgen.stream_timing import StepTiming
from daemon.models.musicgen.streaming_codec import StreamSettings
from protocol.params import GenerationParams

# Windows of 60 frames: their last tenth (positions 54 and on) is "late", the first tenth "early".
PARAMS = GenerationParams(duration_s=2.0, seed=3, top_k=50, extend_stride_s=0.8)


def _drain(stream):
    """(chunks, the generator's return value)."""
    chunks = []
    while True:
        try:
            chunks.append(next(stream))
        except StopIteration as stop:
            return chunks, stop.value


def test_the_report_splits_the_time_and_sees_slow_late_steps(load_preset):
    model = MusicGen(dataclasses.replace(load_preset("debug/musicgen").bundle, window_frames=60),
                     engine=EngineOptions(warmup=False), stream_settings=StreamSettings(first_chunk_frames=5))
    engine = model.engine
    decoder = engine.decoder
    real_step = decoder.step

    def slow_late(cache, column, position):
        if position >= 50:  # cache slots: every step the report counts as late (the last tenth, 54 on) and more
            time.sleep(0.02)
        return real_step(cache, column, position)

    decoder.step = slow_late
    steps: list[int] = []
    try:
        started = time.perf_counter()
        chunks, report = _drain(model.stream("a drone", PARAMS, progress=lambda done, total: steps.append(total)))
        wall_s = time.perf_counter() - started
    finally:
        del decoder.step
    assert sum(c.frames for c in chunks) == 64000
    windows = len(model._plan([None], PARAMS, audio_prompt=None, melody=None, progress=None, should_stop=None).windows)
    assert report.engine == "float32"
    assert report.steps == steps[-1] - windows  # every step but each window's prefill
    assert report.late_step_ms >= 18 and 0 < report.early_step_ms < report.late_step_ms - 15
    assert report.decode_s > 0 and report.codec_s > 0 and report.decode_s + report.codec_s <= wall_s
    assert decoder.live_caches == 0
    assert 0 < report.prefill_s and 0 < report.step_s and report.prefill_s + report.step_s <= report.decode_s


def test_a_batched_jobs_report_counts_the_shared_steps_that_made_its_columns(load_preset):
    """The shared steps (run by whichever job's thread is free) are timed by the batch."""
    model = MusicGen(dataclasses.replace(load_preset("debug/musicgen").bundle, window_frames=60),
                     engine=EngineOptions(warmup=False), stream_settings=StreamSettings(first_chunk_frames=5))
    steps: list[int] = []
    chunks, report = _drain(model.stream("a drone", PARAMS, batched=True, label="job",
                                         progress=lambda done, total: steps.append(total)))
    assert sum(c.frames for c in chunks) == 64000
    windows = len(model._plan([None], PARAMS, audio_prompt=None, melody=None, progress=None, should_stop=None).windows)
    assert windows > 1 and report.steps == steps[-1] - windows
    assert 0 < report.prefill_s and 0 < report.step_s
    assert report.decode_s == report.prefill_s + report.step_s and report.codec_s > 0
    assert report.early_step_ms is not None and report.late_step_ms is not None
    assert model.batch is not None and model.batch.snapshot().steps >= report.steps


def test_the_late_steps_are_split_by_whether_a_next_windows_context_rode_in_them():
    timing = StepTiming(window_frames=100)  # positions 90 and on are late
    record = timing.recorder(first_position=80)
    record(0, 9.0)  # the prefill: not a step
    for index in range(1, 20):  # positions 81-99: 81-89 mid-window, 90-99 late
        record(index, 0.030 if index % 4 == 0 else 0.010, 2 if index % 4 == 0 else 0)
    # Late: positions 90-99 are indices 10-19; 12 and 16 carried 2 riding columns each.
    assert timing.late_split() == "late steps 10: 8 alone 10.00 ms, 2 with riding columns 30.00 ms"
    assert StepTiming(window_frames=100).late_split() is None


def test_a_handing_off_jobs_log_says_which_late_steps_carried_the_next_windows_context(load_preset, caplog):
    model = MusicGen(dataclasses.replace(load_preset("debug/musicgen").bundle, window_frames=60),
                     engine=EngineOptions.parse("int8a8+kv4+nowarmup"),
                     stream_settings=StreamSettings(first_chunk_frames=5))
    if model.engine.decoder.native is None:
        pytest.skip("riffd's native step cannot run here: the hand-off rides it")
    with caplog.at_level(logging.INFO, logger=backend_module.log.name):
        chunks, report = _drain(model.stream("a drone", PARAMS, batched=True, label="job"))
    assert sum(c.frames for c in chunks) == 64000 and report.late_step_ms is not None
    line = next(r.getMessage() for r in caplog.records if "window(s)" in r.getMessage() and "late steps" in r.getMessage())
    found = re.search(r"late steps (\d+): (\d+) alone .*, (\d+) with riding columns (\S+) ms", line)
    assert found is not None, line
    late, alone, riding = (int(found.group(i)) for i in (1, 2, 3))
    # Each window but the last rides its successor's context through its own last third, late tenth included.
    assert riding > 0 and alone + riding == late and float(found.group(4)) > 0
