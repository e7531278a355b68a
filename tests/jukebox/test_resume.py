"""A Jukebox render checkpointed per window resumes to the same codes and audio (issue 18).

In process, on the debug/jukebox preset: a top-level sketch is "killed" (an exception out of
the checkpoint store) after some windows, then run again with the saved checkpoint. A real
SIGKILL of the daemon mid-upsampling is tested in tests/daemon/test_durable.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from daemon.journal import Journal
from daemon.models import registry
from daemon.models.jukebox.backend import FINAL, PREVIEW, JukeboxBackend, JukeboxControls

SKETCH_S = 2 * 16384 / 44100  # a top-level-only sketch of 9 windows
CONTROLS = JukeboxControls(artist="zac brown band", genres="country", lyrics="hello", seed=5)


class Killed(Exception):
    """Stands for the SIGKILL: raised by the checkpoint store after `saves_left` saves."""


class KillingCheckpoint:
    def __init__(self, checkpoint, saves_left: int) -> None:
        self._checkpoint, self.saves_left, self.progress = checkpoint, saves_left, []

    def load(self):
        return self._checkpoint.load()

    def save(self, arrays, done: int, total: int) -> None:
        if self.saves_left == 0:
            raise Killed()
        self._checkpoint.save(arrays, done, total)
        self.saves_left -= 1
        self.progress.append((done, total))


@pytest.fixture(scope="module")
def backend(riffd_cache: Path) -> JukeboxBackend:
    backend = registry.load_backend("debug/jukebox", device="cpu", cache_dir=riffd_cache)
    assert isinstance(backend, JukeboxBackend)
    return backend


def _stages(chunks) -> dict[str, np.ndarray]:
    return {stage: np.concatenate([c.audio for c in chunks if c.stage == stage], axis=1)
            for stage in (PREVIEW, FINAL)}


def _killed_then_resumed(backend: JukeboxBackend, journal: Journal, saves_before_kill: int, duration_s: float,
                         upsample: bool) -> tuple[list, KillingCheckpoint, KillingCheckpoint]:
    first = KillingCheckpoint(journal.checkpoint("night"), saves_before_kill)
    with pytest.raises(Killed):
        for _ in backend.sample(CONTROLS, duration_s, upsample=upsample, checkpoint=first):
            pass
    saved = journal.checkpoint("night").load()
    assert saved is not None and "rng_state" in saved
    again = KillingCheckpoint(journal.checkpoint("night"), 10_000)
    return list(backend.sample(CONTROLS, duration_s, upsample=upsample, checkpoint=again)), first, again


def _check_resumed(resumed: list, whole: list, first: KillingCheckpoint, again: KillingCheckpoint,
                   window_tokens: int) -> None:
    # Only the windows after the checkpoint were sampled again: the resumed run's progress goes on
    # from the checkpoint's (its first save is one window past the killed run's last).
    done_before, total = first.progress[-1]
    assert done_before < again.progress[0][0] <= done_before + window_tokens
    assert again.progress[-1] == (total, total)
    # The same chunks, bit for bit: codes, the generator's draws and the streamed decode all resumed.
    assert [(c.stage, c.index, c.offset_samples, c.frames) for c in resumed] == \
        [(c.stage, c.index, c.offset_samples, c.frames) for c in whole]
    for stage in (PREVIEW, FINAL):
        if any(c.stage == stage for c in whole):
            np.testing.assert_array_equal(_stage(resumed, stage), _stage(whole, stage), err_msg=stage)


def _stage(chunks: list, stage: str) -> np.ndarray:
    return np.concatenate([c.audio for c in chunks if c.stage == stage], axis=1)


def test_a_sketch_killed_in_the_top_level_resumes_to_the_same_codes(backend: JukeboxBackend, tmp_path: Path) -> None:
    whole = list(backend.sample(CONTROLS, SKETCH_S, upsample=False))
    resumed, first, again = _killed_then_resumed(backend, Journal(tmp_path), 3, SKETCH_S, upsample=False)
    _check_resumed(resumed, whole, first, again, window_tokens=16)


def test_a_checkpoint_of_another_render_is_not_used(backend: JukeboxBackend, tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal")
    with pytest.raises(Killed):
        for _ in backend.sample(CONTROLS, SKETCH_S, upsample=False,
                                checkpoint=KillingCheckpoint(journal.checkpoint("x"), 5)):
            pass
    other_seed = JukeboxControls(artist="zac brown band", genres="country", lyrics="hello", seed=6)
    counting = KillingCheckpoint(journal.checkpoint("x"), 10_000)
    chunks = list(backend.sample(other_seed, SKETCH_S, upsample=False, checkpoint=counting))
    assert counting.progress[0][0] == 128 and counting.progress[-1] == (256, 256)  # every window, from zero
    assert _stage(chunks, FINAL).shape[1] == round(SKETCH_S * 44100)


def test_an_upsample_killed_in_the_bottom_level_resumes_to_the_same_audio(backend: JukeboxBackend,
                                                                          tmp_path: Path) -> None:
    top = np.random.default_rng(3).integers(0, 64, size=64)  # 8192 samples: 7 middle, 31 bottom windows
    whole = list(backend.upsample(CONTROLS, top))
    journal = Journal(tmp_path)
    first = KillingCheckpoint(journal.checkpoint("up"), 20)  # 7 middle windows, then 13 bottom ones
    with pytest.raises(Killed):
        for _ in backend.upsample(CONTROLS, top, checkpoint=first):
            pass
    again = KillingCheckpoint(journal.checkpoint("up"), 10_000)
    resumed = list(backend.upsample(CONTROLS, top, checkpoint=again))
    # The preview of the given codes, the 13 bottom windows' audio decoded again in their pushes, the rest.
    _check_resumed(resumed, whole, first, again, window_tokens=32)
