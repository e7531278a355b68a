"""Renders longer than the model window: exact length, each window continuing the last one's tail."""

from __future__ import annotations

import pytest

from daemon.models.musicgen.longform import Window, plan_windows
from protocol.errors import InvalidArgument
from protocol.params import GenerationParams


def test_plan_covers_the_duration_with_overlapping_windows():
    windows = plan_windows(new_frames=4500, prompt_frames=0, window_frames=1500, stride_frames=900)
    assert sum(w.new_frames for w in windows) == 4500
    assert windows[0] == Window(0, 0, 1500, 0)
    for w in windows[1:]:
        assert w.prompt_frames == 600 and w.prompt_frames + w.new_frames <= 1500
    with pytest.raises(InvalidArgument):
        plan_windows(new_frames=10, prompt_frames=1500, window_frames=1500, stride_frames=900)


def test_ninety_seconds_is_exactly_ninety_seconds(musicgen):
    seen = []

    def on_window(window, prompt, new_codes):
        seen.append((window, prompt, new_codes))

    params = GenerationParams(duration_s=90.0, seed=5, top_k=50)
    steps = []
    render = musicgen._generate(["a long drone"], params, on_window=on_window,
                                progress=lambda done, total: steps.append((done, total)))
    assert render.audio.shape == (1, 1, 90 * 32000)
    assert render.codes.shape[-1] == 4500
    assert [w.new_frames for w, _, _ in seen] == [1500, 900, 900, 900, 300]
    produced = seen[0][2]
    for window, prompt, new_codes in seen[1:]:
        # Each later window starts from the last (window - stride) frames generated so far.
        assert prompt.shape[-1] == window.prompt_frames == 600
        assert (prompt == produced[..., -600:]).all()
        produced = new_codes if new_codes.shape[-1] >= 600 else None
    assert steps[-1][0] == steps[-1][1] == len(steps)


def test_odd_durations_are_sample_exact(musicgen):
    render = musicgen.generate(["clicks"], GenerationParams(duration_s=0.3337, seed=1))
    assert render.audio.shape[-1] == round(0.3337 * 32000)


def test_a_stride_under_one_frame_is_refused_in_seconds() -> None:
    from types import SimpleNamespace

    from daemon.models.musicgen.longform import stride_frames

    bundle = SimpleNamespace(frame_rate=50, window_frames=1500)
    with pytest.raises(InvalidArgument, match=r"at least one codec frame \(0.02 s\), got 0.01"):
        stride_frames(0.01, bundle)  # type: ignore[arg-type]
    assert stride_frames(40.0, bundle) == 1499  # type: ignore[arg-type]  # past the window: its longest
