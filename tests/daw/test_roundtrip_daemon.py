"""A region continued by a real daemon (`debug/musicgen`, inline audio over ZeroMQ) and written back for the DAW."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from clients import Client
from daemon.audio.resample import convert_channels, resample
from daemon.audio.roundtrip import read_region, write_round_trip
from daemon.audio.types import Audio
from daemon_harness import DaemonThread, make_config
from protocol.audio_ref import InlineAudio
from protocol.messages import Chunk, Done


@pytest.fixture(scope="module")
def debug_daemon(tmp_path_factory: pytest.TempPathFactory, riffd_cache: Path) -> Iterator[DaemonThread]:
    config = make_config(tmp_path_factory.mktemp("daw-out"), models=("debug/musicgen",), cache_dir=riffd_cache)
    daemon = DaemonThread(config).start()
    yield daemon
    daemon.stop()


@pytest.mark.parametrize("rate, channels, subtype", [(44100, 2, "PCM_24"), (48000, 1, "PCM_16")])
def test_a_region_comes_back_at_its_own_rate_width_and_samples(
    debug_daemon: DaemonThread, tmp_path: Path, rate: int, channels: int, subtype: str
) -> None:
    rng = np.random.default_rng(rate)
    frames = round(0.77 * rate)  # not a whole number of codec frames
    t = np.arange(frames) / rate
    region_samples = np.stack([0.3 * np.sin(2 * np.pi * (110 + 55 * c) * t) + 0.01 * rng.standard_normal(frames)
                               for c in range(channels)], axis=1)
    source = tmp_path / "region.wav"
    sf.write(str(source), region_samples, rate, subtype=subtype)
    region = read_region(source)

    with Client(debug_daemon.zmq, timeout_s=60) as client:
        events = list(client.continue_(InlineAudio(region.audio.samples, rate), duration_s=1.0, seed=4))
    assert isinstance(events[-1], Done), events[-1]
    chunks = [e for e in events if isinstance(e, Chunk)]
    continuation = Audio(np.concatenate([c.audio for c in chunks], axis=1), chunks[0].sample_rate)
    assert continuation.sample_rate == 32000 and continuation.channels == 1  # the model's own format inside

    out = write_round_trip(tmp_path / "joined.wav", region, continuation, duration_s=1.0, include_prompt=True)
    info = sf.info(str(out))
    assert (info.samplerate, info.channels, info.subtype) == (rate, channels, subtype)
    assert info.frames == frames + rate
    original, _ = sf.read(str(source), dtype="int32", always_2d=True)
    joined, _ = sf.read(str(out), dtype="int32", always_2d=True)
    assert np.array_equal(joined[:frames], original)
    expected = convert_channels(resample(continuation.samples, 32000, rate), channels).T
    got = joined[frames:].astype(np.float64) / 2**31
    error = got - expected[: got.shape[0]]
    assert 10 * np.log10(np.sum(expected**2) / np.sum(error**2)) > 40  # the model's audio, quantised to the format


@pytest.mark.parametrize("rate, channels, subtype, suffix", [(44100, 1, "PCM_24", ".wav"), (48000, 2, "PCM_16", ".flac")])
def test_riffd_continue_include_prompt_drops_onto_the_timeline(
    debug_daemon: DaemonThread, tmp_path: Path, capsys: pytest.CaptureFixture, rate: int, channels: int, subtype: str,
    suffix: str,
) -> None:
    from clients.cli.main import main

    frames = round(1.13 * rate)
    t = np.arange(frames) / rate
    source = tmp_path / f"region{suffix}"
    sf.write(str(source), np.stack([0.25 * np.sin(2 * np.pi * 330 * t + c) for c in range(channels)], axis=1), rate,
             subtype=subtype)
    out, only = tmp_path / f"joined{suffix}", tmp_path / f"cont{suffix}"
    common = ["--duration", "1", "--seed", "3", "--endpoint", debug_daemon.zmq]
    assert main(["continue", str(source), "--include-prompt", "-o", str(out), *common]) == 0
    assert main(["continue", str(source), "-o", str(only), *common]) == 0
    assert f"region + continuation, {rate} Hz, {channels} ch, {subtype}" in capsys.readouterr().out

    for path, length in ((out, frames + rate), (only, rate)):
        info = sf.info(str(path))
        assert (info.samplerate, info.channels, info.subtype, info.frames) == (rate, channels, subtype, length)
    original, _ = sf.read(str(source), dtype="int32", always_2d=True)
    joined, _ = sf.read(str(out), dtype="int32", always_2d=True)
    continuation, _ = sf.read(str(only), dtype="int32", always_2d=True)
    assert np.array_equal(joined[:frames], original), "the region, bit for bit"
    assert np.array_equal(joined[frames:], continuation), "then the continuation, right at the region's end"
