"""Seamless loops, the timeline's arithmetic, a take's plan."""

from __future__ import annotations

import numpy as np
import pytest

from daemon.tempo.loop import seamless_loop
from daemon.tempo.take import TakePlan
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
