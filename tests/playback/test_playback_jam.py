"""A jam on the daemon's sound card (a JACK server with the dummy driver): heard as generated, without an
underrun across slides and changes, paced to what the card played, kept alive by playing."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from clients import Client
from daemon_harness import make_config, wait_for
from jack_harness import JackCapture, JackServer
from protocol.messages import Chunk
from signals import correlation, find_lag
from test_playback_daemon import Playing, played_reference, start_playing

JAM_RATE = 32000


@pytest.fixture(scope="module")
def jam_playing(jack_server: JackServer, riffd_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Playing]:
    config = make_config(tmp_path_factory.mktemp("jam-play-out"), models=("debug/musicgen",), cache_dir=riffd_cache,
                         jam_lead_s=1.0, jam_window_s=1.0, jam_context_s=0.3, jam_grace_s=0.5)
    playing = start_playing(config)
    yield playing
    playing.daemon.stop()


@pytest.mark.parametrize("in_time", [{}, {"bpm": 120.0, "launch": "bar"}], ids=["free", "in-time"])
def test_a_jam_plays_without_underruns_across_slides_and_changes(jam_playing: Playing,
                                                                 start_capture: Callable[[], JackCapture],
                                                                 in_time: dict) -> None:
    """Free, and in time (issue 15: launched on the bar, conformed as it plays through Rubber Band's
    real-time stretcher, paced in the samples heard)."""
    player = jam_playing.player
    capture = start_capture()
    capture.wait_following("PortAudio")
    underruns_before = player.status().underruns
    chunks: list[Chunk] = []
    leads: list[float] = []
    client = Client(jam_playing.daemon.zmq, timeout_s=60)
    jam = client.jam("steady groove", seed=3, **in_time)
    for event in jam:
        if isinstance(event, Chunk):
            chunks.append(event)
            end = event.offset_samples + event.frames
            if len(chunks) in (3, 5, 7):
                applied = (jam.set(temperature=1.2) if len(chunks) == 3 else
                           jam.prompts({"steady groove": 0.6, "bright bells": 0.4}) if len(chunks) == 5 else
                           jam.set(prompt="slow pads", top_k=100))
                voice = player.voice(jam.jam)
                # Paced to the card: the change is heard within the lead (plus a chunk and the codec's hold-back).
                leads.append((applied.offset_samples - voice.played_samples) / JAM_RATE)
            if end >= 3.2 * JAM_RATE:  # three windows: at least three slides
                break
    heard_voice = player.voice(jam.jam)
    assert heard_voice is not None
    # Its client goes away, but the jam plays here: it keeps going past the grace period.
    client.close()
    time.sleep(1.0)
    with Client(jam_playing.daemon.zmq, timeout_s=60) as other:
        assert jam.jam in other.status().jams
        other.jam_stop(jam.jam)
        wait_for(lambda: jam.jam not in other.status().jams, timeout_s=30)
    assert player.wait_idle(15.0)
    time.sleep(0.1)
    captured = capture.stop()
    assert player.status().underruns == underruns_before, "no underrun across the slides and the changes"
    assert all(0 <= lead <= 1.0 + 0.5 + 0.25 for lead in leads), leads

    if in_time:
        assert chunks[0].beat is not None and chunks[0].beat % 4 == pytest.approx(0.0, abs=1e-6)
    expected = played_reference(chunks)[0]
    # A launch the dummy driver stalled on a loaded machine starts the jam part-way in (jack_harness.late_start).
    skipped = heard_voice.late_start_frames
    assert skipped <= round(heard_voice.late_callback_s * heard_voice.device_rate) + 1, "skipped more than the callback was late"
    expected = expected[skipped:]
    lag = find_lag(captured[0], expected)
    heard = captured[0, lag:lag + expected.size]
    assert correlation(heard, expected) > 0.999, "heard as generated, seams and all"
