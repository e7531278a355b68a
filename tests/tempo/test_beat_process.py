"""The beat tracker's child process (daemon/tempo/beat_process.py): the same beats as tracking here,
the tracker's own errors, and a child that died replaced on the next request."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from daemon.tempo.beat_process import BeatProcess
from daemon.tempo.conform import track_beats
from drums import pattern

RATE = 32000


@pytest.fixture(scope="module")
def beats() -> Iterator[BeatProcess]:
    process = BeatProcess()
    yield process
    process.close()


def test_the_child_finds_the_beats_tracking_here_finds(beats: BeatProcess) -> None:
    audio, _ = pattern(123.0, 4, RATE, swing=0.2, lead_in_s=0.3)
    here = track_beats(audio, RATE, 120.0, 4)
    there = beats.track(audio, RATE, 120.0, 4)
    assert there.confident and here.confident
    np.testing.assert_array_equal(there.beat_times_s, here.beat_times_s)
    assert (there.tempo_bpm, there.downbeat_index) == (here.tempo_bpm, here.downbeat_index)
    stereo = np.stack([audio[0], audio[0]])  # channels are mixed down, as here
    np.testing.assert_array_equal(beats.track(stereo, RATE, 120.0, 4, known_bpm=123.0).beat_times_s,
                                  track_beats(stereo, RATE, 120.0, 4, known_bpm=123.0).beat_times_s)


def test_the_trackers_error_comes_back_as_itself_and_the_child_serves_on(beats: BeatProcess) -> None:
    silence = np.zeros((1, RATE), np.float32)
    with pytest.raises(ZeroDivisionError) as here:
        track_beats(silence, 0, 120.0, 4)  # a rate of 0
    with pytest.raises(ZeroDivisionError) as there:
        beats.track(silence, 0, 120.0, 4)
    assert str(there.value) == str(here.value)
    audio, _ = pattern(120.0, 4, RATE, swing=0.0, lead_in_s=0.1)
    assert beats.track(audio, RATE, 120.0, 4).confident


def test_a_child_that_died_is_replaced_by_the_next_request(beats: BeatProcess) -> None:
    audio, _ = pattern(120.0, 4, RATE, swing=0.0, lead_in_s=0.1)
    beats.track(audio, RATE, 120.0, 4)
    child = beats._child
    assert child is not None
    child.kill()
    child.wait()
    assert beats.track(audio, RATE, 120.0, 4).confident  # served by a new child
    assert beats._child is not None and beats._child.pid != child.pid
