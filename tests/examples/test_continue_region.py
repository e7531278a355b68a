"""The DAW region recipe: bar-aligned takes at the region's rate, width and format, region kept bit for bit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
from recipe_harness import RecipeDaemon, run_recipe

from daemon.audio.roundtrip import MODEL_MARGIN_S
from protocol.messages import Continue


def test_takes_continue_a_stereo_24_bit_region_on_the_bar_grid(recipe_daemon: RecipeDaemon, tmp_path: Path) -> None:
    rate = 44100
    t = np.arange(int(2.5 * rate)) / rate
    stereo = np.stack([0.3 * np.sin(2 * np.pi * 220 * t), 0.3 * np.sin(2 * np.pi * 330 * t)], axis=1)
    region = tmp_path / "verse.wav"
    sf.write(region, stereo, rate, subtype="PCM_24")
    before = set(recipe_daemon.log.requests)

    done = run_recipe("continue_region", str(region), "--bpm", "120", "--bars", "1", "--takes", "2",
                      "--prompt", "add a lead", "--seed", "5", "--context-s", "1.5", "--include-prompt",
                      "--endpoint", recipe_daemon.thread.zmq, "--out-dir", str(tmp_path / "takes"))
    assert done.returncode == 0, done.stderr
    takes = sorted((tmp_path / "takes").glob("verse-take*.wav"))
    assert [p.name for p in takes] == ["verse-take1.wav", "verse-take2.wav"]
    original, _ = sf.read(region, dtype="float64")
    bar_frames = round(2.0 * rate)  # one 4/4 bar at 120 bpm
    outputs = []
    for path in takes:
        info = sf.info(path)
        assert (info.samplerate, info.channels, info.subtype) == (rate, 2, "PCM_24")
        audio, _ = sf.read(path, dtype="float64")
        assert len(audio) == len(original) + bar_frames
        np.testing.assert_array_equal(audio[:len(original)], original)  # the region, untouched
        assert np.abs(audio[len(original):]).max() > 0
        outputs.append(audio[len(original):])
    assert not np.array_equal(outputs[0], outputs[1])  # two seeds, two takes

    # The daemon got the last 1.5 s of the region inline, with the prompt and consecutive seeds.
    requests = [r for job, r in recipe_daemon.log.requests.items() if job not in before]
    assert len(requests) == 2 and all(isinstance(r, Continue) for r in requests)
    assert sorted(r.seed for r in requests) == [5, 6]
    for request in requests:
        # One bar at 120 bpm, and the margin that makes its last DAW sample music (roundtrip.model_duration_s).
        assert request.prompt == "add a lead" and request.duration_s == 2.0 + MODEL_MARGIN_S
        assert request.audio.sample_rate == rate and request.audio.samples.shape == (2, round(1.5 * rate))


def test_a_missing_region_is_a_clear_error(recipe_daemon: RecipeDaemon, tmp_path: Path) -> None:
    done = run_recipe("continue_region", str(tmp_path / "nope.wav"), "--bpm", "120",
                      "--endpoint", recipe_daemon.thread.zmq)
    assert done.returncode == 2 and "nope.wav" in done.stderr and "bad_audio" in done.stderr
