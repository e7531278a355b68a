"""Seamless loops, the timeline's arithmetic, a take's plan."""

from __future__ import annotations

import numpy as np
import pytest

from daemon.audio.types import AudioChunk
from daemon.tempo import conform as conform_module
from daemon.tempo.conform import Conformed
from daemon.tempo.loop import seamless_loop
from daemon.tempo.take import TakePlan, TakeState, shape
from daemon.tempo.timeline import OwnTimeline, TimelineState, launch_beat, next_boundary
from protocol.errors import InvalidArgument

RATE = 32000


def _seam_jump(loop: np.ndarray) -> float:
    """The step from the loop's last sample to its first, over the largest step inside it."""
    inside = np.abs(np.diff(loop[0])).max()
    return float(abs(loop[0, 0] - loop[0, -1]) / inside)


def test_a_loop_is_exactly_its_frames_and_its_seam_is_as_smooth_as_its_inside() -> None:
    t = np.arange(RATE * 3) / RATE
    take = (0.5 * np.sin(2 * np.pi * 187.3 * t)).astype(np.float32)[None, :]  # no whole cycles in a bar
    frames = 2 * RATE + 1234
    naive = take[:, :frames]
    assert _seam_jump(naive) > 5.0  # cut and repeated, it clicks
    loop = seamless_loop(take, frames, int(0.05 * RATE))
    assert loop.shape == (1, frames)
    assert _seam_jump(loop) <= 1.0
    # Past the crossfade the loop is the take itself.
    np.testing.assert_array_equal(loop[:, RATE:], take[:, RATE:frames])


def test_the_timeline_line_and_its_boundaries() -> None:
    line = TimelineState(tempo_bpm=120.0, beat=10.0, time_s=100.0)
    assert line.beat_at(101.0) == pytest.approx(12.0)
    assert line.time_at(16.0) == pytest.approx(103.0)
    assert line.phase_at(101.0, 4) == pytest.approx(0.0)
    assert next_boundary(12.0, 4) == 12.0 and next_boundary(12.001, 4) == 16.0
    assert launch_beat(line, "bar", 100.1, 4) == 12.0
    assert launch_beat(line, "beat", 100.1, 4) == 11.0
    assert launch_beat(line, "now", 100.1, 4) == pytest.approx(10.2)


def test_the_own_timeline_keeps_its_beat_across_a_tempo_change() -> None:
    now = [0.0]
    timeline = OwnTimeline(clock=lambda: now[0])
    assert timeline.state() is None
    timeline.set_tempo(60.0)
    now[0] = 4.0
    assert timeline.state().beat_at(now[0]) == pytest.approx(4.0)
    timeline.set_tempo(120.0)
    now[0] = 5.0
    assert timeline.state().beat_at(now[0]) == pytest.approx(6.0)
    with pytest.raises(InvalidArgument):
        timeline.set_tempo(5.0)


def test_a_plan_asks_for_enough_audio_and_names_the_tempo() -> None:
    plan = TakePlan(bpm=97.0, quantum=4, bars=4, launch="bar", loop=True, conform=True)
    assert plan.frames(32000) == round(16 * 60 / 97 * 32000)
    assert plan.generate_s(0.0) > (4 + 1) * plan.bar_s  # a bar of pre-roll and the tempo margin
    assert plan.prompt("dub techno", "{bpm} bpm") == "dub techno, 97 bpm"
    assert plan.prompt(None, "{bpm} bpm") == "97 bpm"
    assert plan.prompt("x", "") == "x"


def test_a_take_under_half_its_bars_repeats_to_exactly_its_frames() -> None:
    frames = 2 * RATE
    take = np.random.default_rng(5).standard_normal((2, frames * 3 // 10)).astype(np.float32)
    loop = seamless_loop(take, frames, int(0.05 * RATE))
    assert loop.shape == (2, frames)
    have = take.shape[1]  # nothing past the loop's end: no crossfade, the take again and again
    for start in range(0, frames, have):
        np.testing.assert_array_equal(loop[:, start : start + have], take[:, : frames - start])


@pytest.mark.parametrize("loop", [False, True])
def test_a_take_whose_grid_leaves_too_little_keeps_its_bars_whole_at_its_own_time(
        monkeypatch: pytest.MonkeyPatch, loop: bool) -> None:
    # Found far slower than asked, the grid's stretch leaves less than the take's bars: its bars come
    # whole from the audio as generated, not filled with silence or repeats.
    plan = TakePlan(bpm=120.0, quantum=4, bars=2, launch="now", loop=loop, conform=True)
    raw = np.random.default_rng(6).standard_normal((1, int(plan.generate_s(0.0) * RATE))).astype(np.float32)
    short = raw[:, : RATE * 3]  # 1.5 of the 2 bars
    monkeypatch.setattr(conform_module, "conform", lambda *args: Conformed(short, 85.0, 0.708, True))
    take = TakeState(plan)
    chunks = [AudioChunk(0, 0, raw[:, : RATE], RATE), AudioChunk(1, RATE, raw[:, RATE:], RATE)]
    out = np.concatenate([c.audio for c in shape(iter(chunks), take, state=lambda: None, now_s=lambda: 0.0,
                                                  lead_s=0.0)], axis=1)
    frames = plan.frames(RATE)
    assert out.shape == (1, frames) and take.frames == frames and take.source_bpm is None
    # past the loop's crossfade and before the cut's fade, the generated audio itself
    np.testing.assert_array_equal(out[:, RATE // 2 : frames - RATE // 100], raw[:, RATE // 2 : frames - RATE // 100])
