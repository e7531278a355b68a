"""Bad audio inputs, through a real daemon: each refused with a clear code (or, where the file is
merely odd but valid, rendered), and the daemon serves the next request."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from daemon_harness import DaemonThread, make_config

from clients import Client
from protocol.messages import Done, Error

RATE = 16000


def _good_wav() -> bytes:
    import io

    buffer = io.BytesIO()
    sf.write(buffer, (0.1 * np.sin(np.arange(RATE) / 10)).astype(np.float32), RATE, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def _patched(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    out = bytearray(data)
    out[offset:offset + struct.calcsize(fmt)] = struct.pack(fmt, value)
    return bytes(out)


def _bad_files(folder: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, the error code it must get)."""
    good = _good_wav()
    raw: dict[str, tuple[bytes, str]] = {
        "zero_length": (b"", "bad_audio"),
        "truncated_header": (good[:30], "bad_audio"),
        "header_only": (good[:44], "bad_audio"),
        "text_named_wav": (b"not audio at all\n" * 20, "bad_audio"),
        "png_named_wav": (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 2, "bad_audio"),
        "riff_then_garbage": (good[:12] + bytes(np.random.default_rng(0).integers(0, 256, 2000, np.uint8)), "bad_audio"),
        "rate_1_hz": (_patched(good, 24, "<I", 1), "bad_audio"),
        "rate_4e9_hz": (_patched(good, 24, "<I", 4_000_000_000), "bad_audio"),
        "channels_0": (_patched(good, 22, "<H", 0), "bad_audio"),
        "channels_65535": (_patched(good, 22, "<H", 65535), "bad_audio"),
        "corrupt_flac": (b"fLaC" + bytes(range(256)) * 4, "bad_audio"),
    }
    files = {}
    for name, (data, code) in raw.items():
        path = folder / f"{name}.{'flac' if 'flac' in name else 'wav'}"
        path.write_bytes(data)
        files[name] = (path, code)
    for name, value in (("nan", np.nan), ("inf", np.inf), ("minus_inf", -np.inf)):
        samples = np.zeros(RATE // 4, np.float32)
        samples[100] = value
        sf.write(folder / f"{name}.wav", samples, RATE, subtype="FLOAT")
        files[name] = (folder / f"{name}.wav", "bad_audio")
    sf.write(folder / "channels_100.wav", np.zeros((16, 100), np.float32), RATE, subtype="FLOAT")
    files["channels_100"] = (folder / "channels_100.wav", "bad_audio")
    sf.write(folder / "rate_800k.wav", np.zeros(1000, np.float32), 800_000, subtype="FLOAT")
    files["rate_800k"] = (folder / "rate_800k.wav", "bad_audio")
    # Over --max-audio-s (5 s here): refused from the header, before anything is decoded.
    sf.write(folder / "too_long.wav", np.zeros(6 * 8000, np.int16), 8000, subtype="PCM_16")
    files["too_long"] = (folder / "too_long.wav", "audio_too_large")
    os.mkdir(folder / "a_folder.wav")
    files["a_folder"] = (folder / "a_folder.wav", "bad_audio")
    files["missing"] = (folder / "missing.wav", "bad_audio")
    return files


@pytest.fixture(scope="module")
def audio_daemon(tmp_path_factory: pytest.TempPathFactory, riffd_cache: Path):
    inputs = tmp_path_factory.mktemp("inputs")
    config = make_config(tmp_path_factory.mktemp("out"), models=("debug/musicgen",), cache_dir=riffd_cache,
                         audio_dirs=(inputs,), max_audio_s=5.0)
    daemon = DaemonThread(config).start()
    yield daemon, inputs
    daemon.stop()


def test_bad_audio_files_are_refused_with_their_code_and_the_daemon_serves_on(audio_daemon) -> None:
    daemon, inputs = audio_daemon
    files = _bad_files(inputs)
    with Client(daemon.zmq, timeout_s=30) as client:
        for name, (path, code) in files.items():
            for stream in (client.continue_(str(path), duration_s=0.5),
                           client.generate("x", duration_s=0.5, audio_prompt=str(path))):
                events = list(stream)
                assert isinstance(events[-1], Error), (name, events[-1])
                assert events[-1].code == code, (name, events[-1])
                assert path.name in events[-1].message
        assert isinstance(list(client.generate("x", duration_s=0.5))[-1], Done)


@pytest.mark.parametrize("name, samples, rate, outcome", [
    ("truncated_data", None, RATE, "done"),  # a WAV cut mid-data: the frames present are read
    ("rate_1000", np.zeros((1, 500), np.float32), 1000, "done"),
    ("rate_768k", np.zeros((2, 76800), np.float32), 768_000, "done"),
    ("channels_64", np.zeros((64, 800), np.float32), RATE, "done"),
    ("full_scale_square", np.sign(np.sin(np.arange(RATE) / 5))[None].astype(np.float32) * 8.0, RATE, "done"),
    # Shorter than one codec frame: nothing to continue from, said so (not an internal error).
    ("one_frame", np.full((1, 1), 0.5, np.float32), RATE, "invalid_argument"),
    ("ten_ms_at_768k", np.zeros((2, 7680), np.float32), 768_000, "invalid_argument"),
])
def test_odd_but_valid_audio_renders_or_gets_a_clear_error(audio_daemon, name: str, samples, rate: int,
                                                           outcome: str) -> None:
    daemon, inputs = audio_daemon
    path = inputs / f"odd-{name}.wav"
    if samples is None:
        path.write_bytes(_good_wav()[: len(_good_wav()) // 2])
    else:
        sf.write(path, samples.T, rate, subtype="FLOAT")
    with Client(daemon.zmq, timeout_s=60) as client:
        events = list(client.continue_(str(path), duration_s=0.5, seed=1))
        if outcome == "done":
            assert isinstance(events[-1], Done), events[-1]
            audio = np.concatenate([e.audio for e in events if e.TYPE == "chunk"], axis=1)
            assert audio.shape[1] == events[-1].frames > 0 and np.isfinite(audio).all()
        else:
            assert isinstance(events[-1], Error) and events[-1].code == outcome, events[-1]
        assert isinstance(list(client.generate("x", duration_s=0.25))[-1], Done)
