"""The daemon playing its jobs on a JACK server, as `riffd serve --play` will: real daemon, real
client over ZeroMQ, the real `debug/musicgen` preset, jack_capture on the speakers."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from clients import Client
from daemon.audio.playback import PlaybackConfig, Player
from daemon.audio.playback.sink import PlaybackSinkFactory
from daemon.audio.resample import StreamResampler
from daemon.server.app import Daemon
from daemon.sinks import FileSinkFactory
from daemon_harness import DaemonThread, fake_loader, make_config
from jack_harness import JackCapture, JackServer
from protocol.messages import Chunk, Done, Error
from signals import correlation, find_lag, ser_db

RATE = 48000


def playing_daemon(config, player: Player, loader=None) -> DaemonThread:  # noqa: ANN001
    """A daemon whose every job is played, as with `riffd serve --play`."""
    thread = DaemonThread(config, loader=loader)
    # The test harness builds a Daemon with the default sinks; this one adds the playback sink.
    thread.daemon = Daemon(config, loader=loader, sink_factories=[
        FileSinkFactory(config.out_dir.resolve()), PlaybackSinkFactory(player, play_by_default=True)])
    return thread.start()


@pytest.fixture(scope="module")
def player(jack_server: JackServer) -> Iterator[Player]:
    player = Player.open(PlaybackConfig(device="system", buffer_s=0.3))
    yield player
    player.close()


@pytest.fixture(scope="module")
def debug_player_daemon(player: Player, riffd_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonThread]:
    config = make_config(tmp_path_factory.mktemp("play-out"), models=("debug/musicgen",), cache_dir=riffd_cache)
    daemon = playing_daemon(config, player)
    yield daemon
    daemon.stop()


def played_reference(chunks: list[Chunk]) -> np.ndarray:
    """What the voice plays for these chunks: one resampling stream to the device rate, `[C, T]`."""
    stream = StreamResampler(chunks[0].sample_rate, RATE, chunks[0].channels)
    pieces = [stream.push(chunk.audio) for chunk in chunks]
    pieces.append(stream.push(np.zeros((chunks[0].channels, 0), np.float32), last=True))
    return np.concatenate(pieces, axis=1)


def run_job(client: Client, prompt: str, seed: int) -> list[Chunk]:
    chunks: list[Chunk] = []
    for event in client.generate(prompt, duration_s=1.5, seed=seed):
        if isinstance(event, Chunk):
            chunks.append(event)
        last = event
    assert isinstance(last, Done), last
    return chunks


def test_a_daemon_job_is_heard_as_it_was_generated(
    debug_player_daemon: DaemonThread, player: Player, start_capture: Callable[[], JackCapture]
) -> None:
    capture = start_capture()
    capture.wait_following("PortAudio")
    underruns_before = player.status().underruns
    with Client(debug_player_daemon.zmq, timeout_s=60) as client:
        chunks = run_job(client, "a steady pulse", seed=5)
    assert player.wait_idle(15.0)
    time.sleep(0.1)
    captured = capture.stop()

    expected = played_reference(chunks)[0]
    assert np.sqrt(np.mean(expected**2)) > 1e-3, "the debug model makes audible output"
    lag = find_lag(captured[0], expected)
    heard = captured[:, lag : lag + expected.size]
    assert correlation(heard[0], expected) > 0.9999
    assert ser_db(expected, heard[0]) > 60.0 and ser_db(expected, heard[1]) > 60.0  # mono on both speakers
    assert player.status().underruns == underruns_before, "generation is faster than real time: no underrun"


def test_two_overlapping_daemon_jobs_are_both_heard(
    debug_player_daemon: DaemonThread, player: Player, start_capture: Callable[[], JackCapture]
) -> None:
    capture = start_capture()
    capture.wait_following("PortAudio")
    with Client(debug_player_daemon.zmq, timeout_s=60) as client:
        first = run_job(client, "first layer", seed=11)
        # The first job renders in a fraction of its length; the second starts while it sounds.
        second = run_job(client, "second layer", seed=12)
    assert player.wait_idle(15.0)
    time.sleep(0.1)
    captured = capture.stop()[0]

    ref_1, ref_2 = played_reference(first)[0], played_reference(second)[0]
    lag_1, lag_2 = find_lag(captured, ref_1), find_lag(captured, ref_2)
    assert lag_1 < lag_2 < lag_1 + ref_1.size, "the second job began while the first was sounding"
    rebuilt = np.zeros_like(captured)
    rebuilt[lag_1 : lag_1 + ref_1.size] += ref_1
    rebuilt[lag_2 : lag_2 + ref_2.size] += ref_2
    assert ser_db(rebuilt, captured) > 60.0


def test_cancelling_a_playing_daemon_job_fades_it_out(
    player: Player, start_capture: Callable[[], JackCapture], tmp_path: Path
) -> None:
    # fake/slow renders a 0.5-amplitude sine at 5x real time, slow enough to cancel mid-job.
    daemon = playing_daemon(make_config(tmp_path / "out", models=("fake/slow",)), player, loader=fake_loader)
    try:
        capture = start_capture()
        capture.wait_following("PortAudio")
        with Client(daemon.zmq, timeout_s=60) as client:
            stream = client.generate("long", duration_s=20.0, job="to-cancel")
            for event in stream:
                if isinstance(event, Chunk) and event.index == 12:
                    break  # ~3 s rendered, ~2.5 s buffered or played
            voice = player.voice("to-cancel")
            assert voice is not None and voice.playing
            client.cancel("to-cancel")
            events = list(stream)
            assert isinstance(events[-1], Error) and events[-1].code == "cancelled"
        assert voice.ended.wait(2.0)
        time.sleep(0.1)
        captured = capture.stop()[0]
    finally:
        daemon.stop()
    sounding = np.flatnonzero(np.abs(captured) > 0)
    tail = captured[sounding[-1] - 2000 : sounding[-1] + 1]
    # The last 5 ms are the fade: the sine's peaks fall along a line to zero, no step at the end.
    fade_frames = round(PlaybackConfig().fade_ms * 1e-3 * RATE)
    before = np.max(np.abs(tail[: -fade_frames - 50]))
    assert before > 0.45, "full level before the cancel"
    assert np.all(np.abs(tail[-fade_frames:]) <= 0.5 * (np.arange(fade_frames, 0, -1) / fade_frames) + 1e-3)
    assert abs(tail[-1]) < 0.01, "it ends at (nearly) zero, not mid-wave"
