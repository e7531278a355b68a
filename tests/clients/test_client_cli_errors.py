"""A user's mistakes at the `riffd` command line end in one line and status 2, never a traceback,
and the ones a flag shows are refused before any request is sent."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest

from clients import Client
from clients.cli.main import main
from protocol import wire
from protocol.audio_ref import InlineAudio
from protocol.errors import MessageTooLarge
from protocol.messages import Continue


def _silent_endpoint() -> str:
    """A loopback port nothing listens on (bound and released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{sock.getsockname()[1]}"


def test_a_silent_daemon_is_one_line(capsys) -> None:
    assert main(["status", "--endpoint", _silent_endpoint(), "--timeout", "0.3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("riffd: error: no event from") and "daemon running" in err and "Traceback" not in err


@pytest.mark.parametrize("argv, message", [
    (["generate", "x", "-o", "take.mp3"], "must end in .wav or .flac"),
    (["continue", "region.wav", "-o", "cont.ogg"], "must end in .wav or .flac"),
    (["jam", "start", "x", "-o", "jam.mp3"], "must end in .wav or .flac"),
    (["render", "x", "-o", "take.aiff"], "must end in .wav or .flac"),
    (["status", "--endpoint", "localhost:7401"], "not an endpoint"),
    (["status", "--timeout", "-1"], "above 0"),
    (["status", "--timeout", "nan"], "above 0"),
])
def test_a_bad_flag_is_refused_before_anything_is_sent(argv: list[str], message: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_an_output_that_is_a_folder_is_refused_first(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "takes.wav"
    folder.mkdir()
    with pytest.raises(SystemExit):
        main(["generate", "x", "-o", str(folder)])
    assert "is a folder" in capsys.readouterr().err


def test_a_file_error_is_one_line_with_its_code(tmp_path: Path, capsys) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    assert main(["keys", str(not_a_folder / "keys")]) == 2
    err = capsys.readouterr().err
    assert err == f"riffd: error: cannot write {not_a_folder / 'keys'}: Not a directory [output_error]\n"


# /proc takes no new files, for root too; each command names one output there (or none: JOB.wav in /proc).
@pytest.mark.parametrize("argv, output", [
    (["generate", "x", "-o", "/proc/riffd-take.wav"], "/proc/riffd-take.wav"),
    (["generate", "x"], "/proc/JOB.wav"),
    (["continue", "REGION", "-o", "/proc/riffd-cont.wav"], "/proc/riffd-cont.wav"),
    (["jukebox", "sample", "--duration", "1", "-o", "/proc/riffd-piece.wav"], "/proc/riffd-piece.wav"),
    (["jukebox", "sample", "--duration", "1", "-o", "OK", "--preview", "/proc/riffd-preview.wav"],
     "/proc/riffd-preview.wav"),
    (["jukebox", "sample", "--duration", "1", "-o", "OK", "--lyric-labels", "/proc/riffd-words.txt"],
     "/proc/riffd-words.txt"),
    (["jukebox", "upsample", "sketch1", "-o", "/proc/riffd-full.wav"], "/proc/riffd-full.wav"),
    (["jam", "start", "x", "-o", "/proc/riffd-jam.wav"], "/proc/riffd-jam.wav"),
])
def test_an_output_that_cannot_be_written_is_refused_before_anything_is_sent(
        argv: list[str], output: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    import soundfile as sf

    region = tmp_path / "region.wav"
    sf.write(region, np.zeros((480, 1), np.float32), 48000)
    argv = [{"REGION": str(region), "OK": str(tmp_path / "ok.wav")}.get(arg, arg) for arg in argv]
    monkeypatch.chdir("/proc")
    # A silent endpoint: a request sent would end in a timeout, not in the file's error.
    assert main([*argv, "--endpoint", _silent_endpoint(), "--timeout", "0.5"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(("riffd: error: ", "error: ")) and err.count("\n") == 0, err
    assert f"error: cannot write {output}: " in err and err.endswith(" [output_error]"), err
    assert list(tmp_path.iterdir()) == [region]  # the probe left nothing behind


def test_render_refuses_an_output_it_cannot_write_before_loading_the_model(tmp_path: Path, capsys) -> None:
    # The model is one that cannot load: were it loaded first, that would be the error.
    assert main(["render", "x", "--model", str(tmp_path / "no-model"), "-o", "/proc/riffd-render.wav"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("riffd: error: cannot write /proc/riffd-render.wav: ") and "[output_error]" in err, err


def test_an_output_folder_behind_a_file_is_named_before_anything_is_sent(tmp_path: Path, capsys) -> None:
    not_a_folder = tmp_path / "takes"
    not_a_folder.write_text("")
    assert main(["generate", "x", "-o", str(not_a_folder / "take.wav"), "--endpoint", _silent_endpoint(),
                 "--timeout", "0.5"]) == 2
    assert capsys.readouterr().err == (f"riffd: error: cannot write {not_a_folder / 'take.wav'}: {not_a_folder} is a "
                                       "file, not a folder [output_error]\n")


def test_a_lyrics_file_that_cannot_be_read_is_refused_before_anything_is_sent(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "song.txt"
    assert main(["jukebox", "sample", "--duration", "1", "--lyrics-file", str(missing),
                 "--endpoint", _silent_endpoint(), "--timeout", "0.5"]) == 2
    err = capsys.readouterr().err
    assert err == f"riffd: error: cannot read the lyrics file {missing}: No such file or directory [invalid_argument]\n"


def _continue_of(seconds: float, sample_rate: int = 96000, channels: int = 2) -> Continue:
    samples = np.zeros((channels, round(seconds * sample_rate)), np.float32)
    return Continue(InlineAudio(samples, sample_rate), duration_s=1.0)


def test_a_request_over_the_daemons_message_limit_is_refused_by_the_client() -> None:
    # 22 s of 96 kHz stereo is 16.9 MB as float32: libzmq at the daemon would drop it unanswered.
    assert len(b"".join(wire.encode(_continue_of(21.0)))) < wire.MAX_MESSAGE_BYTES
    with pytest.raises(MessageTooLarge, match=r"22\.0 s of inline audio.*--send-path"):
        wire.encode(_continue_of(22.0))
    # Through the client it fails at once, before waiting on a daemon that would never answer.
    with Client(_silent_endpoint(), timeout_s=30) as client, pytest.raises(MessageTooLarge):
        next(iter(client.continue_(_continue_of(22.0).audio, duration_s=1.0)))


def test_a_region_no_request_can_carry_is_refused_with_its_way_out(tmp_path: Path, capsys) -> None:
    import soundfile as sf

    region = tmp_path / "surround.wav"
    sf.write(region, np.zeros((1000, 10), np.float32), 48000)
    assert main(["continue", str(region), "--endpoint", _silent_endpoint(), "--timeout", "0.5"]) == 2
    err = capsys.readouterr().err
    assert "10 channels at 48000 Hz" in err and "--send-path" in err and "[bad_audio]" in err


def test_bars_and_a_duration_are_refused_as_the_daemon_refuses_them(capsys) -> None:
    assert main(["generate", "x", "--bars", "4", "--bpm", "97", "--duration", "8",
                 "--endpoint", _silent_endpoint(), "--timeout", "0.5"]) == 2
    assert "give --bars or --duration, not both [invalid_argument]" in capsys.readouterr().err


def test_render_names_auto_among_engines_and_a_bad_device_is_the_requests_mistake(tmp_path: Path, riffd_cache: Path,
                                                                                   capsys) -> None:
    render = ["render", "x", "--model", "debug/musicgen", "--cache-dir", str(riffd_cache), "-o", str(tmp_path / "x.wav")]
    assert main([*render, "--engine", "bogus"]) == 2
    assert "(or auto, the default" in capsys.readouterr().err
    assert main([*render, "--device", "tpu"]) == 2
    assert "unknown device 'tpu' (use auto, cpu, cuda or mps) [invalid_argument]" in capsys.readouterr().err
