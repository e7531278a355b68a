"""`riffd jukebox` against a daemon running the real debug/jukebox preset."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from daemon_harness import DaemonThread, make_config

from clients.cli.main import main

PIECE_S = 16384 / 44100  # one top-level window of debug/jukebox


@pytest.fixture(scope="module")
def jukebox_daemon(tmp_path_factory: pytest.TempPathFactory, riffd_cache: Path) -> Iterator[DaemonThread]:
    out = tmp_path_factory.mktemp("jukebox-cli-out")
    daemon = DaemonThread(make_config(out, models=("debug/jukebox",), cache_dir=riffd_cache)).start()
    yield daemon
    daemon.stop()


def test_sample_writes_the_upsampled_audio_and_the_preview(jukebox_daemon: DaemonThread, tmp_path: Path,
                                                           capsys) -> None:
    lyrics = tmp_path / "song.txt"
    lyrics.write_text("Hello from the CLI\n", encoding="utf-8")
    out, preview = tmp_path / "take.wav", tmp_path / "preview.wav"
    assert main(["jukebox", "sample", "--duration", str(PIECE_S), "--artist", "Zac Brown Band", "--genres", "country",
                 "--lyrics-file", str(lyrics), "--seed", "3", "-o", str(out), "--preview", str(preview),
                 "--save", "--job", "cli-jb", "--endpoint", jukebox_daemon.zmq]) == 0
    printed = capsys.readouterr().out
    assert f"{preview} (preview)" in printed and f"{out} (0.37 s, 44100 Hz, 1 ch, job cli-jb)" in printed
    final, rate = sf.read(out, dtype="float32")
    early, _ = sf.read(preview, dtype="float32")
    assert rate == 44100 and final.shape == early.shape == (16384,)
    # The file holds the final stage (what the daemon saved for the job), not the preview.
    saved, _ = sf.read(jukebox_daemon.config.out_dir / "cli-jb.wav", dtype="float32")
    np.testing.assert_allclose(final, saved, atol=1e-4)  # both through 16-bit WAV
    assert not np.allclose(final, early, atol=1e-2)


def test_sketch_then_upsample_by_job_id(jukebox_daemon: DaemonThread, tmp_path: Path, capsys) -> None:
    labels = tmp_path / "words.txt"
    assert main(["jukebox", "sample", "--duration", str(PIECE_S), "--sketch", "--save", "--job", "cli-sketch",
                 "--seed", "1", "-o", str(tmp_path / "sketch.wav"), "--lyrics", "la di da", "--lyric-labels",
                 str(labels), "--endpoint", jukebox_daemon.zmq]) == 0
    # An Audacity label track of the words sung, in order, within the piece.
    rows = [line.split("\t") for line in labels.read_text(encoding="utf-8").splitlines()]
    assert rows and [row[2] for row in rows] == ["la", "di", "da"][: len(rows)]
    times = [float(t) for row in rows for t in row[:2]]
    assert times == sorted(times) and 0.0 <= times[0] and times[-1] <= PIECE_S + 1e-6
    assert main(["jukebox", "upsample", "cli-sketch", "--seed", "2", "-o", str(tmp_path / "full.wav"),
                 "--endpoint", jukebox_daemon.zmq]) == 0
    assert sf.info(tmp_path / "full.wav").frames == 16384
    assert main(["jukebox", "sample", "--duration", str(PIECE_S), "--artist", "Nobody", "--endpoint",
                 jukebox_daemon.zmq]) == 2
    assert "unknown artist" in capsys.readouterr().err
