"""Audio files in and out: formats, rates, bit depths, atomic writes, and refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from daemon.audio.io import read_audio, write_audio
from daemon.audio.resample import StreamResampler, conform, resample
from daemon.audio.types import Audio
from protocol.errors import BadAudio, InvalidArgument


def _sine(frames: int, rate: int, freq: float = 440.0, channels: int = 2) -> np.ndarray:
    t = np.arange(frames) / rate
    return np.stack([0.5 * np.sin(2 * np.pi * freq * t + c) for c in range(channels)]).astype(np.float32)


@pytest.mark.parametrize("suffix, depth, subtype", [(".wav", None, "FLOAT"), (".wav", "16", "PCM_16"),
                                                    (".wav", "24", "PCM_24"), (".flac", None, "PCM_24"),
                                                    (".flac", "16", "PCM_16")])
def test_round_trip(tmp_path, suffix, depth, subtype):
    samples = _sine(4800, 48000)
    path = write_audio(tmp_path / f"a{suffix}", samples, 48000, subtype=depth)
    assert sf.info(str(path)).subtype == subtype
    back = read_audio(path)
    assert back.sample_rate == 48000 and back.samples.shape == samples.shape
    tolerance = {"FLOAT": 0, "PCM_24": 2**-22, "PCM_16": 2**-14}[subtype]
    assert np.abs(back.samples - samples).max() <= tolerance
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind


def test_write_at_another_rate_keeps_duration_and_pitch(tmp_path):
    path = write_audio(tmp_path / "r.wav", _sine(32000, 32000, channels=1), 32000, target_sample_rate=44100)
    back = read_audio(path)
    assert back.sample_rate == 44100 and back.frames == 44100
    spectrum = np.abs(np.fft.rfft(back.samples[0]))
    assert abs(np.argmax(spectrum) * 44100 / back.frames - 440) < 2


def test_conform_mixes_and_resamples():
    stereo = Audio(_sine(44100, 44100), 44100)
    mono = conform(stereo, 32000, 1)
    assert mono.samples.shape == (1, 32000) and mono.sample_rate == 32000
    wide = conform(Audio(_sine(100, 32000, channels=1), 32000), 32000, 2)
    assert np.array_equal(wide.samples[0], wide.samples[1])


def test_stream_resampler_matches_whole_buffer():
    samples = _sine(48000, 32000, channels=2)
    stream = StreamResampler(32000, 48000, 2)
    pieces = [stream.push(samples[:, i:i + 1000]) for i in range(0, 48000, 1000)] + [stream.push(samples[:, :0], last=True)]
    joined = np.concatenate(pieces, axis=1)
    assert abs(joined.shape[1] - 72000) <= 1
    whole = resample(samples, 32000, 48000)
    # Same signal away from the edges: streaming does not click at chunk boundaries.
    mid = slice(2000, 70000)
    error = joined[:, mid] - whole[:, mid]
    assert 10 * np.log10(np.sum(whole[:, mid] ** 2) / np.sum(error**2)) > 40


def test_refusals(tmp_path):
    with pytest.raises(BadAudio, match="does not exist"):
        read_audio(tmp_path / "nope.wav")
    with pytest.raises(BadAudio, match="not usable"):
        read_audio(tmp_path / ("x" * 300 + ".wav"))
    with pytest.raises(BadAudio, match="not usable"):
        read_audio("bad\x00name.wav")
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(BadAudio, match="cannot read"):
        read_audio(bad)
    nan = tmp_path / "nan.wav"
    sf.write(str(nan), np.array([0.0, np.nan, 0.0], dtype=np.float32), 8000, subtype="FLOAT")
    with pytest.raises(BadAudio, match="NaN"):
        read_audio(nan)
    long = tmp_path / "long.wav"
    sf.write(str(long), np.zeros(8000 * 3, dtype=np.float32), 8000)
    with pytest.raises(BadAudio, match="limit"):
        read_audio(long, max_duration_s=2)
    with pytest.raises(InvalidArgument):
        write_audio(tmp_path / "x.mp3", _sine(10, 8000), 8000)
    with pytest.raises(InvalidArgument):
        write_audio(tmp_path / "x.flac", _sine(10, 8000), 8000, subtype="float")


def test_published_files_get_the_mode_the_umask_gives_a_new_file(tmp_path: Path, monkeypatch) -> None:
    """Staged with mkstemp (0600), outputs were readable by their owner only: no use to a DAW or
    sampler running as another user. Each kind of output gets what `open()` would have given it."""
    import os
    import stat

    from daemon import file_mode
    from daemon.models.jukebox.codes_file import TopCodes, write_codes
    from daemon.sinks.streaming_file import StreamingFileWriter

    monkeypatch.setattr(file_mode, "UMASK", 0o022)  # the usual one, whatever this shell's: 0644, not 0600
    expected = 0o644
    take = write_audio(tmp_path / "take.wav", np.zeros((1, 100), np.float32), 32000)
    streamed = StreamingFileWriter(tmp_path / "streamed.flac", 32000, 1)
    streamed.write(np.zeros((1, 100), np.float32))
    streamed.finish()
    codes = tmp_path / "piece.codes.npz"
    write_codes(codes, TopCodes(codes=np.zeros(8, np.int32)))
    for path in (take, tmp_path / "streamed.flac", codes):
        assert stat.S_IMODE(os.stat(path).st_mode) == expected, path
