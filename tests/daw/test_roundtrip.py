"""DAW round trips: rate, width and sample format of the region kept; the region bit-exact; the seam on time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from daemon.audio.resample import resample
from daemon.audio.roundtrip import place_continuation, read_region, write_round_trip
from daemon.audio.types import Audio
from protocol.errors import InvalidArgument

MODEL_RATE = 32000  # MusicGen's
CODEC_HOP = 640  # samples per codec frame at MODEL_RATE (20 ms)


def sweep(times_s: np.ndarray) -> np.ndarray:
    """A continuous test signal defined for any time: a slow chirp plus a tone, well below 8 kHz."""
    return 0.3 * np.sin(2 * np.pi * (220 * times_s + 400 * times_s**2)) + 0.1 * np.sin(2 * np.pi * 1000 * times_s)


def ser_db(reference: np.ndarray, got: np.ndarray) -> float:
    error = float(np.sum((got - reference) ** 2))
    return float("inf") if error == 0.0 else 10 * np.log10(float(np.sum(reference**2)) / error)


def region_file(tmp_path: Path, rate: int, channels: int, subtype: str, suffix: str, duration_s: float = 1.2345) -> Path:
    """A region of `sweep` (channel c delayed by c ms) stored as `subtype`."""
    frames = round(duration_s * rate)
    t = np.arange(frames) / rate
    samples = np.stack([sweep(t - 1e-3 * c) for c in range(channels)], axis=1)
    path = tmp_path / f"region-{rate}-{channels}-{subtype}{suffix}"
    sf.write(str(path), samples, rate, subtype=subtype)
    return path


def model_continuation(start_s: float, duration_s: float, channels: int) -> Audio:
    """What a model at MODEL_RATE would return: `sweep` from `start_s` on."""
    t = start_s + np.arange(round(duration_s * MODEL_RATE)) / MODEL_RATE
    return Audio(np.stack([sweep(t)] * channels).astype(np.float32), MODEL_RATE)


@pytest.mark.parametrize("rate", [44100, 48000])
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("subtype, suffix", [("PCM_16", ".wav"), ("PCM_24", ".flac"), ("FLOAT", ".wav")])
def test_include_prompt_keeps_rate_width_format_and_the_exact_region(
    tmp_path: Path, rate: int, channels: int, subtype: str, suffix: str
) -> None:
    source = region_file(tmp_path, rate, channels, subtype, suffix)
    region = read_region(source)
    continuation = model_continuation(region.frames / rate, 2.0, channels=1)  # MusicGen-small is mono
    out = write_round_trip(tmp_path / f"out{suffix}", region, continuation, duration_s=2.0, include_prompt=True)

    info = sf.info(str(out))
    assert (info.samplerate, info.channels, info.subtype) == (rate, channels, subtype)
    assert info.frames == region.frames + round(2.0 * rate)
    dtype = "float32" if subtype == "FLOAT" else "int32"  # integers: compare the stored codes themselves
    original, _ = sf.read(str(source), dtype=dtype, always_2d=True)
    written, _ = sf.read(str(out), dtype=dtype, always_2d=True)
    assert np.array_equal(written[: region.frames], original), "the region is bit-identical"
    expected = resample(continuation.samples, MODEL_RATE, rate)[0]
    for channel in range(channels):  # mono continuation spread to every channel of the region
        got = written[region.frames :, channel].astype(np.float64) / (1 if dtype == "float32" else 2**31)
        assert ser_db(expected[: got.size], got) > 60


def test_without_the_prompt_only_the_continuation_is_written_at_the_region_rate(tmp_path: Path) -> None:
    region = read_region(region_file(tmp_path, 44100, 2, "PCM_24", ".wav"))
    stereo = model_continuation(0.0, 1.0, channels=2)
    out = write_round_trip(tmp_path / "cont.flac", region, stereo, duration_s=1.0, subtype="16")
    info = sf.info(str(out))
    assert (info.samplerate, info.channels, info.frames, info.subtype) == (44100, 2, 44100, "PCM_16")


@pytest.mark.parametrize("rate", [44100, 48000])
def test_the_seam_is_on_the_region_timeline_to_the_sample(tmp_path: Path, rate: int) -> None:
    # The model took the prompt in whole codec frames: its continuation starts before the region ends.
    region = read_region(region_file(tmp_path, rate, 1, "FLOAT", ".wav", duration_s=1.2345))
    region_end_s = region.frames / rate
    model_start_s = (round(region_end_s * MODEL_RATE) // CODEC_HOP) * CODEC_HOP / MODEL_RATE
    assert region_end_s - model_start_s > 0.01  # a real overlap to drop (~13 ms here)
    continuation = model_continuation(model_start_s, 1.5, channels=1)
    out = write_round_trip(tmp_path / "joined.wav", region, continuation, duration_s=1.0, include_prompt=True,
                           start_offset_s=model_start_s)
    joined, _ = sf.read(str(out), dtype="float64")
    truth = sweep(np.arange(joined.size) / rate)  # the one continuous signal the file should hold
    seam = slice(region.frames - 2000, region.frames + 2000)
    assert ser_db(truth[seam], joined[seam]) > 60
    # Placing the same continuation at the region's end instead is 13 ms late: it fails this test.
    late = place_continuation(continuation, region, frames=2000)[0]
    assert ser_db(truth[region.frames : region.frames + 2000], late) < 10


def test_a_continuation_that_starts_late_leaves_silence_before_it(tmp_path: Path) -> None:
    region = read_region(region_file(tmp_path, 48000, 1, "FLOAT", ".wav", duration_s=1.0))
    continuation = model_continuation(1.01, 1.0, channels=1)
    placed = place_continuation(continuation, region, frames=48000, start_offset_s=1.01)[0]
    assert np.all(placed[:480] == 0.0) and np.abs(placed[480:960]).max() > 0.1


def test_include_prompt_refuses_a_format_that_would_change_the_region(tmp_path: Path) -> None:
    region = read_region(region_file(tmp_path, 48000, 1, "PCM_24", ".wav"))
    with pytest.raises(InvalidArgument, match="keeps the region's format"):
        write_round_trip(tmp_path / "x.wav", region, model_continuation(0, 1, 1), duration_s=1.0, include_prompt=True,
                         subtype="16")
    with pytest.raises(InvalidArgument, match=r"\.wav or \.flac"):
        write_round_trip(tmp_path / "x.mp3", region, model_continuation(0, 1, 1), duration_s=1.0)
