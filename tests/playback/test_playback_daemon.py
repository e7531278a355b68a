"""The daemon playing its jobs on a JACK server, as `riffd serve --play` does: real daemon, real
client over ZeroMQ, the real `debug/musicgen` preset, jack_capture on the speakers."""

from __future__ import annotations

import logging
import time
from types import SimpleNamespace
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from clients import Client
from clients.cli.main import main
from daemon.audio.playback import PlaybackConfig, PlaybackUnavailable, Player
from daemon.audio.playback import device as device_module
from daemon.audio.playback import player as player_module
from daemon.audio.playback.sink import PlaybackSinkFactory
from daemon.audio.resample import StreamResampler
from daemon.config import DaemonConfig
from daemon.residency import Loader
from daemon.server.app import Daemon
from daemon.sinks import FileSinkFactory
from daemon_harness import DaemonThread, fake_loader, make_config, oscsend, wait_for
from jack_harness import JackCapture, JackServer
from protocol.errors import RiffdError
from protocol.messages import Chunk, Done, Error
from signals import correlation, find_lag, ser_db

RATE = 48000


def playing_daemon(config: DaemonConfig, playback: PlaybackSinkFactory, loader: Loader | None = None) -> DaemonThread:
    """A daemon with the playback sink beside the file sink, as `riffd serve --play` builds it."""
    thread = DaemonThread(config, loader=loader)
    # The harness builds a Daemon with the default sinks; this one adds the playback sink.
    thread.daemon = Daemon(config, loader=loader, sink_factories=[FileSinkFactory(config.out_dir.resolve()), playback])
    return thread.start()


@dataclass
class Playing:
    daemon: DaemonThread
    player: Player


def start_playing(config: DaemonConfig, loader: Loader | None = None) -> Playing:
    """The daemon opens the sound card itself once its models are loaded, as with --play."""
    playback = PlaybackSinkFactory(PlaybackConfig(device="system", buffer_s=0.3), play_by_default=True)
    daemon = playing_daemon(config, playback, loader)
    assert playback.player is not None, "playback did not open"
    return Playing(daemon, playback.player)


@pytest.fixture(scope="module")
def debug_playing(jack_server: JackServer, riffd_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Playing]:
    config = make_config(tmp_path_factory.mktemp("play-out"), models=("debug/musicgen",), cache_dir=riffd_cache)
    playing = start_playing(config)
    yield playing
    playing.daemon.stop()


@pytest.fixture
def fake_playing(jack_server: JackServer, tmp_path: Path) -> Iterator[Playing]:
    """fake/* models: sines of 0.5 amplitude at 220 + seed % 500 Hz, 16 kHz mono; fake/slow at 5x real time."""
    playing = start_playing(make_config(tmp_path / "out", models=("fake/fast", "fake/slow")), fake_loader)
    yield playing
    playing.daemon.stop()


def played_reference(chunks: list[Chunk]) -> np.ndarray:
    """What the voice plays for these chunks: one resampling stream to the device rate, `[C, T]`."""
    stream = StreamResampler(chunks[0].sample_rate, RATE, chunks[0].channels)
    pieces = [stream.push(chunk.audio) for chunk in chunks]
    pieces.append(stream.push(np.zeros((chunks[0].channels, 0), np.float32), last=True))
    return np.concatenate(pieces, axis=1)


def finished(stream: object) -> tuple[list[Chunk], Done]:
    events = list(stream)  # type: ignore[call-overload]
    assert isinstance(events[-1], Done), events[-1]
    return [e for e in events if isinstance(e, Chunk)], events[-1]


def tone_level(window: np.ndarray, frequency_hz: float) -> float:
    """Amplitude of a sine at `frequency_hz` in `window` (a whole number of its periods long)."""
    t = np.arange(window.size) / RATE
    return float(2 * np.abs(np.dot(window, np.exp(-2j * np.pi * frequency_hz * t))) / window.size)


def test_a_daemon_job_is_heard_as_it_was_generated(debug_playing: Playing, start_capture: Callable[[], JackCapture]) -> None:
    player = debug_playing.player
    capture = start_capture()
    capture.wait_following("PortAudio")
    underruns_before = player.status().underruns
    with Client(debug_playing.daemon.zmq, timeout_s=60) as client:
        chunks, _ = finished(client.generate("a steady pulse", duration_s=1.5, seed=5))
    assert player.wait_idle(15.0)
    time.sleep(0.1)
    captured = capture.stop()
    assert player.status().underruns == underruns_before, "generation is faster than real time: no underrun"

    expected = played_reference(chunks)[0]
    assert np.sqrt(np.mean(expected**2)) > 1e-3, "the debug model makes audible output"
    lag = find_lag(captured[0], expected)
    heard = captured[:, lag : lag + expected.size]
    assert correlation(heard[0], expected) > 0.9999
    assert ser_db(expected, heard[0]) > 60.0 and ser_db(expected, heard[1]) > 60.0  # mono on both speakers


def test_two_overlapping_jobs_are_both_heard_at_their_gains(
    fake_playing: Playing, start_capture: Callable[[], JackCapture]
) -> None:
    player = fake_playing.player
    capture = start_capture()
    capture.wait_following("PortAudio")
    with Client(fake_playing.daemon.zmq, timeout_s=60) as client:
        finished(client.generate("low", duration_s=2.5, seed=100, job="layer-1", gain=0.6))  # 320 Hz
        wait_for(lambda: (v := player.voice("layer-1")) is not None and v.frames_played > RATE, timeout_s=10)
        finished(client.generate("high", duration_s=2.5, seed=300, job="layer-2", gain=0.3))  # 520 Hz
    assert player.wait_idle(15.0)
    time.sleep(0.1)
    captured = capture.stop()[0]

    # 100 ms windows hold whole periods of both tones; classify each by which tones sound in it.
    window = RATE // 10
    levels = [(tone_level(captured[i : i + window], 320.0), tone_level(captured[i : i + window], 520.0))
              for i in range(0, captured.size - window, window)]
    low_only = sum(abs(lo - 0.3) < 0.01 and hi < 0.003 for lo, hi in levels)
    both = sum(abs(lo - 0.3) < 0.01 and abs(hi - 0.15) < 0.005 for lo, hi in levels)
    high_only = sum(lo < 0.003 and abs(hi - 0.15) < 0.005 for lo, hi in levels)
    # layer-2 (rendered at once, so its buffer fills at once) starts ~1 s into layer-1's 2.5 s.
    assert low_only >= 7 and both >= 10 and high_only >= 7, (low_only, both, high_only)


def test_an_osc_request_plays_at_its_gain(fake_playing: Playing, start_capture: Callable[[], JackCapture]) -> None:
    # What a Pure Data or TouchOSC patch sends: liblo's oscsend, options as key/value pairs.
    capture = start_capture()
    capture.wait_following("PortAudio")
    oscsend("/riffd/generate", "sfsisfss", "from a patch", 1.5, "seed", 100, "gain", 0.4, "job", "from-osc",
            url=f"osc.udp://127.0.0.1:{fake_playing.daemon.osc_port}")
    wait_for(lambda: fake_playing.player.voice("from-osc") is not None, timeout_s=10)
    assert fake_playing.player.wait_idle(15.0)
    time.sleep(0.1)
    captured = capture.stop()[0]
    window = RATE // 10
    levels = [tone_level(captured[i : i + window], 320.0) for i in range(0, captured.size - window, window)]
    assert sum(abs(level - 0.2) < 0.005 for level in levels) >= 10, levels  # 0.5 x gain 0.4, for ~1.5 s


def test_a_request_can_opt_out_of_playback(fake_playing: Playing) -> None:
    player = fake_playing.player
    with Client(fake_playing.daemon.zmq, timeout_s=60) as client:
        finished(client.generate("muted", duration_s=0.5, job="muted", play=False))
        finished(client.generate("heard", duration_s=0.5, job="heard"))
    assert player.voice("muted") is None
    assert player.voice("heard") is not None


def test_status_reports_the_playback_device_and_its_underruns(fake_playing: Playing, capsys) -> None:
    with Client(fake_playing.daemon.zmq, timeout_s=60) as client:
        finished(client.generate("heard", duration_s=0.5, job="status-heard"))
        status = client.status()
    assert (status.playback, status.underruns) == ("system", 0)
    assert main(["status", "--endpoint", fake_playing.daemon.zmq]) == 0
    assert "playback: system, 0 underruns" in capsys.readouterr().out
    # A sounding job that runs dry counts, as the player counts it.
    voice = fake_playing.player.add_voice("starved", 16000, 1)
    voice.push(np.full((1, 16000), 0.1, np.float32))  # 1 s, then nothing more until it is finished
    wait_for(lambda: voice.underruns > 0, timeout_s=10)
    with Client(fake_playing.daemon.zmq, timeout_s=60) as client:
        assert client.status().underruns == voice.underruns
    voice.cancel()


def test_cancelling_a_playing_daemon_job_fades_it_out(
    fake_playing: Playing, start_capture: Callable[[], JackCapture]
) -> None:
    player = fake_playing.player
    capture = start_capture()
    capture.wait_following("PortAudio")
    with Client(fake_playing.daemon.zmq, timeout_s=60) as client:
        stream = client.generate("long", duration_s=20.0, model="fake/slow", job="to-cancel")
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

    sounding = np.flatnonzero(np.abs(captured) > 0)
    tail = captured[sounding[-1] - 2000 : sounding[-1] + 1]
    # The last 5 ms are the fade: the sine's peaks fall along a line to zero, no step at the end.
    fade_frames = round(PlaybackConfig().fade_ms * 1e-3 * RATE)
    assert np.max(np.abs(tail[: -fade_frames - 50])) > 0.45, "full level before the cancel"
    assert np.all(np.abs(tail[-fade_frames:]) <= 0.5 * (np.arange(fade_frames, 0, -1) / fade_frames) + 1e-3)
    assert abs(tail[-1]) < 0.01, "it ends at (nearly) zero, not mid-wave"


def test_cancel_fades_out_a_job_that_finished_rendering_but_still_sounds(fake_playing: Playing) -> None:
    player = fake_playing.player
    with Client(fake_playing.daemon.zmq, timeout_s=60) as client:
        finished(client.generate("rendered at once", duration_s=5.0, job="sounding"))  # fake/fast: no wait
        voice = player.voice("sounding")
        assert voice is not None and not voice.ended.is_set()
        assert client.cancel("sounding").subject == "sounding"  # ok: the scheduler is done with it
        assert voice.ended.wait(2.0)
        assert voice.frames_played < 2 * RATE, "faded out, not played to its end"
        # Once it is silent (or for a job nobody knows) cancel is the usual not_found error.
        for job in ("sounding", "never-was"):
            with pytest.raises(RiffdError) as failure:
                client.cancel(job)
            assert failure.value.code == "not_found" and f"no queued or running job {job!r}" in failure.value.message


def test_without_an_output_device_the_daemon_says_so_once_and_serves(
    jack_server: JackServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    playback = PlaybackSinkFactory(PlaybackConfig(device="no-such-card"), play_by_default=True)
    with caplog.at_level(logging.WARNING, logger="daemon.audio.playback"):
        daemon = playing_daemon(make_config(tmp_path / "out", models=("fake/fast",)), playback, fake_loader)
        try:
            with Client(daemon.zmq, timeout_s=60) as client:
                for _ in range(2):
                    chunks, done = finished(client.generate("still works", duration_s=0.5))
                    assert sum(c.frames for c in chunks) == done.frames == 8000
        finally:
            daemon.stop()
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("daemon.audio.playback")]
    assert len(messages) == 1 and messages[0].startswith("playback is off: no output device matches 'no-such-card'")
    assert playback.status() is None


def test_a_request_that_asks_to_play_on_an_absent_sound_card_is_told_and_the_daemon_serves(
    jack_server: JackServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`play` true where the sound card cannot open: the job ends with playback_unavailable before any
    audio (no file left), where a job played only by default (--play) renders unheard; the next such
    request tries the card again, so one that has come up since is found and played."""
    out = tmp_path / "out"
    playback = PlaybackSinkFactory(PlaybackConfig(device="no-such-card", buffer_s=0.3), play_by_default=True)
    opened: list[str] = []
    real_open = Player.open.__func__  # type: ignore[attr-defined]

    def open_counted(cls: type[Player], config: PlaybackConfig, timeline: object = None, *, fresh: bool = False) -> Player:
        opened.append(f"{config.device}{' (fresh)' if fresh else ''}")
        return real_open(cls, config, timeline, fresh=fresh)

    monkeypatch.setattr(Player, "open", classmethod(open_counted))
    daemon = playing_daemon(make_config(out, models=("fake/fast",)), playback, fake_loader)
    try:
        assert opened == ["no-such-card"]  # at start, as --play does
        with Client(daemon.zmq, timeout_s=60) as client:
            events = list(client.generate("asked to be heard", duration_s=0.5, job="heard", play=True, save=True))
            refused = events[-1]
            assert isinstance(refused, Error) and refused.code == "playback_unavailable", refused
            assert "no output device matches 'no-such-card'" in refused.message
            assert refused.message.endswith("send the request without play to render it unheard")
            assert not any(isinstance(event, Chunk) for event in events), "audio was made for a refused job"
            assert not list(out.rglob("heard*")), "a refused job left a file"
            # Played by default only (the operator's --play): rendered, unheard, as before.
            chunks, done = finished(client.generate("by default", duration_s=0.5, save=True))
            assert sum(c.frames for c in chunks) == done.frames == 8000 and done.path is not None
            assert opened == ["no-such-card", "no-such-card (fresh)"], "a job played only by default tried again"
            # The card is there now (the operator fixed the name): the next request that asks finds it.
            playback.config = PlaybackConfig(device="system", buffer_s=0.3)
            chunks, done = finished(client.generate("heard now", duration_s=0.5, play=True))
            assert done.frames == 8000 and opened[2:] == ["system (fresh)"]
            assert playback.player is not None and playback.player.alive
    finally:
        daemon.stop()


def test_a_retry_refreshes_portaudios_devices_only_while_no_other_player_is_open(
    jack_server: JackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refreshing PortAudio's device list closes every stream it has open, so a request that tries the
    sound card again must not refresh it under another player of the process."""
    rescans: list[int] = []
    real_rescan = device_module.rescan
    monkeypatch.setattr(device_module, "rescan", lambda sd: (rescans.append(1), real_rescan(sd))[1])
    asks = SimpleNamespace(id="asks", request=SimpleNamespace(play=True, gain=None))
    factory = PlaybackSinkFactory(PlaybackConfig(device="no-such-card", buffer_s=0.3))
    with Player.open(PlaybackConfig(device="system", buffer_s=0.3)) as other:
        for _ in range(2):  # the first try, then a retry
            with pytest.raises(PlaybackUnavailable, match="no-such-card"):
                factory(asks, 32000, 1)  # type: ignore[arg-type]
        assert rescans == [] and other.alive, "a retry refreshed PortAudio under an open player"
    with pytest.raises(PlaybackUnavailable, match="no-such-card"):
        factory(asks, 32000, 1)  # type: ignore[arg-type]
    # Once no player is open (a module fixture's may still be), the retry lists the devices anew.
    assert rescans == ([] if player_module._OPEN else [1])
