"""The `riffd` client commands against a running daemon (real debug/musicgen preset)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import soundfile as sf
from daemon_harness import DaemonThread, make_config, start_fake_daemon, wait_for

from clients import Client
from clients.cli.main import main

REPO = Path(__file__).resolve().parents[2]


def test_generate_writes_the_streamed_audio(debug_daemon: DaemonThread, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out.wav"
    code = main(["generate", "warm pad", "--duration", "1.5", "--seed", "4", "-o", str(out),
                 "--endpoint", debug_daemon.zmq, "--job", "cli-gen"])
    assert code == 0
    printed = capsys.readouterr()
    assert f"{out} (1.50 s, 32000 Hz, 1 ch, job cli-gen)" in printed.out
    assert "cli-gen: seed 4" in printed.err  # a take's seed is its recipe
    data, rate = sf.read(out, dtype="float32", always_2d=True)
    assert rate == 32000 and data.shape == (48000, 1)
    # The same request through the Python client gives the same samples.
    with Client(debug_daemon.zmq) as client:
        again = client.generate("warm pad", duration_s=1.5, seed=4).collect()
    np.testing.assert_array_equal(data.T, again.audio)


def test_continue_as_a_separate_process(debug_daemon: DaemonThread, tmp_path: Path) -> None:
    region = tmp_path / "region.wav"
    sf.write(region, (0.2 * np.sin(np.arange(16000) / 10)).astype(np.float32), 32000)
    out = tmp_path / "cont.flac"
    # The region's samples travel with the request (the default), from another process.
    result = subprocess.run([sys.executable, "-m", "clients.cli.main", "continue", str(region), "--duration", "1",
                             "--seed", "5", "-o", str(out), "--endpoint", debug_daemon.zmq], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120,
                            env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    info = sf.info(out)
    assert info.samplerate == 32000 and info.frames == 32000 and info.format == "FLAC"
    # The daemon reading the same file by path continues it identically.
    by_path = tmp_path / "by-path.flac"
    assert main(["continue", str(region), "--send-path", "--duration", "1", "--seed", "5", "-o", str(by_path),
                 "--endpoint", debug_daemon.zmq]) == 0
    np.testing.assert_array_equal(sf.read(out)[0], sf.read(by_path)[0])


def test_continue_writes_what_the_output_can_hold(debug_daemon: DaemonThread, tmp_path: Path, capsys) -> None:
    endpoint = ["--endpoint", debug_daemon.zmq, "--duration", "0.5", "--seed", "2"]
    float_region = tmp_path / "float.wav"
    sf.write(float_region, (0.2 * np.sin(np.arange(16000) / 7)).astype(np.float32), 48000, subtype="FLOAT")
    # FLAC has no float samples: the continuation alone is written at FLAC's 24 bits...
    assert main(["continue", str(float_region), "-o", str(tmp_path / "cont.flac"), *endpoint]) == 0
    assert sf.info(tmp_path / "cont.flac").subtype == "PCM_24" and "PCM_24" in capsys.readouterr().out
    # ...but with the region, whose float samples FLAC would change, it is refused before any
    # request (to an endpoint nobody answers: a request would time out instead).
    assert main(["continue", str(float_region), "--include-prompt", "-o", str(tmp_path / "joined.flac"),
                 "--endpoint", "tcp://127.0.0.1:9", "--timeout", "0.5"]) == 2
    assert "write a .wav" in capsys.readouterr().err and not (tmp_path / "joined.flac").exists()
    # A region in a codec's format (Ogg Vorbis) keeps its decoded samples, exactly, in a float WAV.
    ogg_region = tmp_path / "region.ogg"
    sf.write(ogg_region, (0.2 * np.sin(np.arange(32000) / 9)).astype(np.float32), 32000, format="OGG",
             subtype="VORBIS")
    joined = tmp_path / "joined.wav"
    assert main(["continue", str(ogg_region), "--include-prompt", "-o", str(joined), *endpoint]) == 0
    decoded, _ = sf.read(ogg_region, dtype="float32", always_2d=True)
    written, rate = sf.read(joined, dtype="float32", always_2d=True)
    assert sf.info(joined).subtype == "FLOAT" and rate == 32000
    np.testing.assert_array_equal(written[:len(decoded)], decoded)
    assert len(written) == len(decoded) + 16000


def test_a_continuation_at_the_daws_rate_ends_on_music_not_padding(debug_daemon: DaemonThread, tmp_path: Path) -> None:
    region = tmp_path / "region48k.wav"
    sf.write(region, (0.2 * np.sin(np.arange(24000) / 7)).astype(np.float32), 48000)
    # 1.004386 s is 32140 model samples, which resample to 48210 at 48 kHz: one short of the take's 48211.
    out = tmp_path / "cont.wav"
    assert main(["continue", str(region), "--duration", "1.004386", "--seed", "3", "-o", str(out),
                 "--endpoint", debug_daemon.zmq]) == 0
    take, rate = sf.read(out, dtype="float32", always_2d=True)
    assert rate == 48000 and take.shape == (48211, 1)
    assert np.all(take[-3:] != 0.0)


def test_continue_sends_the_regions_tail_that_one_request_holds(capsys) -> None:
    from clients.cli.continue_ import _tail
    from protocol import wire
    from protocol.messages import Continue

    region = np.random.default_rng(0).standard_normal((2, 40 * 48000)).astype(np.float32)
    sent = _tail(region, 48000, 30.0)  # 11.5 MB: fits
    assert sent.frames == 30 * 48000 and np.array_equal(sent.samples, region[:, -sent.frames:])
    assert capsys.readouterr().err == ""
    hi_res = np.zeros((2, 30 * 96000), np.float32)
    sent = _tail(hi_res, 96000, 30.0)  # 23 MB would not: the last 21.76 s do
    request = Continue(sent, duration_s=1.0)
    assert 21.5 * 96000 < sent.frames and len(b"".join(wire.encode(request))) <= wire.MAX_MESSAGE_BYTES
    assert "sending the region's last 21.76 s" in capsys.readouterr().err


def test_status_and_errors(debug_daemon: DaemonThread, capsys) -> None:
    assert main(["status", "--endpoint", debug_daemon.zmq]) == 0
    text = capsys.readouterr().out
    assert "models:  debug/musicgen" in text and "on cpu" in text
    assert "playback: off\n" in text  # a daemon without --play
    assert main(["status", "--json", "--endpoint", debug_daemon.zmq]) == 0
    assert json.loads(capsys.readouterr().out)["default_model"] == "debug/musicgen"
    assert main(["cancel", "no-such-job", "--endpoint", debug_daemon.zmq]) == 2
    assert "no queued or running job 'no-such-job' [not_found]" in capsys.readouterr().err
    assert main(["generate", "x", "--duration", "1", "--model", "debug/nope", "--endpoint", debug_daemon.zmq]) == 2
    assert "[unknown_model]" in capsys.readouterr().err


def test_status_names_the_device_the_models_run_on_not_the_device_setting(tmp_path: Path, riffd_cache: Path,
                                                                         capsys) -> None:
    import torch

    # --device auto (the default) on this machine: the GPU when there is one, else the CPU.
    expected = "cuda:0" if torch.cuda.is_available() else "cpu"
    daemon = DaemonThread(make_config(tmp_path / "out", models=("debug/musicgen",), device="auto",
                                      cache_dir=riffd_cache)).start()
    try:
        assert main(["status", "--endpoint", daemon.zmq]) == 0
        assert f") on {expected}, up " in capsys.readouterr().out
        with Client(daemon.zmq) as client:
            assert client.status().device == expected  # what OSC patches and the web studio show too
    finally:
        daemon.stop()


def test_cancel_from_another_command(tmp_path: Path, capsys) -> None:
    daemon = start_fake_daemon(tmp_path / "daemon-out")
    try:
        codes = {}
        worker = threading.Thread(target=lambda: codes.setdefault("gen", main(
            ["generate", "long", "--duration", "60", "--model", "fake/slow", "--job", "victim",
             "-o", str(tmp_path / "never.wav"), "--endpoint", daemon.zmq])))
        worker.start()
        with Client(daemon.zmq) as client:
            wait_for(lambda: "victim" in client.status().jobs)
        assert main(["cancel", "victim", "--endpoint", daemon.zmq]) == 0
        worker.join(10)
        assert codes["gen"] == 2 and not (tmp_path / "never.wav").exists()
        assert "[cancelled]" in capsys.readouterr().err
    finally:
        daemon.stop()


def test_models_list_load_unload(tmp_path: Path, capsys) -> None:
    daemon = start_fake_daemon(tmp_path / "daemon-out")
    try:
        endpoint = ["--endpoint", daemon.zmq]
        assert main(["models", *endpoint]) == 0
        assert capsys.readouterr().out == "fake/fast  (default)\n"
        assert main(["models", "--load", "fake/stereo", *endpoint]) == 0
        assert main(["models", *endpoint]) == 0
        assert capsys.readouterr().out.splitlines()[-2:] == ["fake/fast  (default)", "fake/stereo"]
        assert main(["models", "--unload", "fake/fast", *endpoint]) == 0
        assert main(["models", "--load", "fake/broken", *endpoint]) == 2
        assert "[model_unavailable]" in capsys.readouterr().err
        assert main(["models", *endpoint]) == 0
        assert capsys.readouterr().out.splitlines() == ["fake/stereo", "default fake/fast (not loaded: loads on first use)"]
    finally:
        daemon.stop()


def test_exit_status_turns_errors_into_one_line(capsys) -> None:
    from clients.cli.common import exit_status
    from protocol.errors import BadAudio

    def fails() -> int:
        raise BadAudio("audio file x.wav does not exist")

    def times_out() -> int:
        raise TimeoutError("no answer from tcp://127.0.0.1:1 in 1 s")

    assert exit_status(lambda: 0) == 0
    assert exit_status(fails) == 2 and capsys.readouterr().err == "error: audio file x.wav does not exist [bad_audio]\n"
    assert exit_status(times_out) == 2 and "CurveZMQ" in capsys.readouterr().err

    def cannot_write() -> int:  # what writing a recipe's output into a missing folder raises
        raise FileNotFoundError(2, "No such file or directory", "/no/such/folder/take.wav")

    assert exit_status(cannot_write) == 2
    assert capsys.readouterr().err == "error: cannot write /no/such/folder/take.wav: No such file or directory [output_error]\n"
