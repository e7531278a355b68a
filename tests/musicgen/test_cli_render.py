"""`riffd render`: exact files by default, a one-line error and exit 2 for every bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from clients.cli.main import main

ROOT = Path(__file__).resolve().parents[2]


def _render(riffd_cache, *args: str) -> list[str]:
    return ["render", "--model", "debug/musicgen", "--cache-dir", str(riffd_cache), "--no-progress", *args]


def test_render_writes_exact_float_wav_at_model_rate(riffd_cache, tmp_path):
    out = tmp_path / "x.wav"
    # A real process, as users run it: the console entry point's module.
    proc = subprocess.run([sys.executable, "-m", "clients.cli.main", *_render(riffd_cache, "warm pads", "-o", str(out),
                                                                            "--duration", "2", "--seed", "3")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    info = sf.info(str(out))
    assert (info.samplerate, info.channels, info.frames, info.subtype) == (32000, 1, 64000, "FLOAT")


def test_render_options_reach_the_file(riffd_cache, tmp_path):
    flac = tmp_path / "x.flac"
    assert main(_render(riffd_cache, "bass", "-o", str(flac), "--duration", "0.5", "--sample-rate", "48000",
                        "--bit-depth", "16", "--greedy")) == 0
    info = sf.info(str(flac))
    assert (info.samplerate, info.frames, info.subtype) == (48000, 24000, "PCM_16")
    stereo = tmp_path / "s.wav"
    assert main(["render", "--model", "debug/musicgen-stereo", "--cache-dir", str(riffd_cache), "--no-progress",
                 "-o", str(stereo), "--duration", "0.5", "--seed", "1"]) == 0
    assert sf.info(str(stereo)).channels == 2


def test_audio_prompt_and_melody_files(riffd_cache, tmp_path):
    source = tmp_path / "in.wav"
    t = np.arange(22050) / 22050
    sf.write(str(source), np.stack([np.sin(2 * np.pi * 220 * t)] * 2, axis=1) * 0.3, 22050)
    out = tmp_path / "cont.wav"
    assert main(_render(riffd_cache, "go on", "-o", str(out), "--duration", "1", "--audio-prompt", str(source))) == 0
    assert sf.info(str(out)).frames == 32000
    melody_out = tmp_path / "mel.wav"
    assert main(["render", "--model", "debug/musicgen-melody", "--cache-dir", str(riffd_cache), "--no-progress",
                 "folk", "-o", str(melody_out), "--duration", "1", "--melody", str(source)]) == 0
    assert sf.info(str(melody_out)).frames == 32000


@pytest.mark.parametrize("args, code", [
    (["", "--duration", "1"], "invalid_argument"),
    (["x", "--duration", "0"], "invalid_argument"),
    (["x", "--duration", "-2"], "invalid_argument"),
    (["x", "--duration", "nan"], "invalid_argument"),
    (["x", "--duration", "100000"], "duration_too_long"),
    (["x", "--top-k", "-1"], "invalid_argument"),
    (["x", "--top-p", "1.5"], "invalid_argument"),
    (["x", "--top-p", "-0.1"], "invalid_argument"),
    (["x", "--temperature", "0"], "invalid_argument"),
    (["x", "--temperature", "-1"], "invalid_argument"),
    (["x", "--melody", "{wav}"], "unsupported"),
    (["x", "--audio-prompt", "{missing}"], "bad_audio"),
    (["x", "--audio-prompt", "{corrupt}"], "bad_audio"),
    (["x", "--audio-prompt", "{empty}"], "bad_audio"),
    (["x", "--audio-prompt", "{unreadable}"], "bad_audio"),
    (["x", "--model", "debug/no-such-preset"], "unknown_model"),
    (["x", "--model", "not a model id!"], "unknown_model"),
    (["x", "--model", "./no/such/folder"], "unknown_model"),
    (["x", "--bit-depth", "7"], "invalid_argument"),
])
def test_bad_input_is_one_line_and_exit_2(riffd_cache, tmp_path, capsys, args, code):
    wav = tmp_path / "ok.wav"
    sf.write(str(wav), np.zeros(3200), 32000)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt garbage that is not audio")
    empty = tmp_path / "empty.wav"
    sf.write(str(empty), np.zeros((0, 1)), 32000)
    unreadable = tmp_path / "locked.wav"
    sf.write(str(unreadable), np.zeros(3200), 32000)
    unreadable.chmod(0)
    names = dict(wav=wav, missing=tmp_path / "missing.wav", corrupt=corrupt, empty=empty, unreadable=unreadable)
    argv = [a.format(**names) for a in args]
    if code == "bad_audio" and "unreadable" in args[-1] and os.geteuid() == 0:
        argv[-1] = str(tmp_path)  # root reads anything: a folder stands in for an unreadable file
    if "--model" in argv:
        cmd = ["render", "--cache-dir", str(riffd_cache), "--no-progress", "-o", str(tmp_path / "o.wav"), *argv]
    else:
        cmd = _render(riffd_cache, "-o", str(tmp_path / "o.wav"), *argv)
    assert main(cmd) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("riffd: error: ") and err[0].endswith(f"[{code}]"), err
    assert not (tmp_path / "o.wav").exists()


def test_offline_uncached_hub_model_says_how_to_get_it(riffd_cache, tmp_path, capsys, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    assert main(["render", "x", "-o", str(tmp_path / "o.wav"), "--model", "facebook/musicgen-small", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "facebook/musicgen-small" in err and "riffd pull facebook/musicgen-small" in err and "[model_unavailable]" in err
