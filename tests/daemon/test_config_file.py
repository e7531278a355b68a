"""The `--config` TOML file: every value of its setting's type, a wrong one refused by name before anything starts."""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.config import DaemonConfig, add_arguments, config_from_args
from protocol.errors import InvalidArgument

REPO = Path(__file__).resolve().parents[2]


def config_from_file(path: Path, *flags: str) -> DaemonConfig:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return config_from_args(parser.parse_args(["--config", str(path), *flags]))


@pytest.mark.parametrize("line, wanted", [
    # Switches: a quoted word is a string, not a switch turned off (these were all taken as true).
    ('play = "false"', "play must be true or false"),
    ('web = "off"', "web must be true or false"),
    ('allow_remote = "no"', "allow_remote must be true or false"),
    ("codec-thread = 0", "codec-thread must be true or false"),
    # Integers.
    ('max_queue = "16"', "max_queue must be an integer, got '16'"),
    ("osc-port = 7400.0", "osc-port must be an integer, got 7400.0"),
    ("max_jams = true", "max_jams must be an integer, got True"),
    # Numbers (an integer is one).
    ('max_duration_s = "300"', "max_duration_s must be a number, got '300'"),
    ('zmq_rate_limit = "x"', "zmq_rate_limit must be a number, got 'x'"),
    ("bpm = false", "bpm must be a number, got False"),
    # Paths.
    ("out = 5", "out must be a path (a string), got 5"),
    ('cache_dir = ["a"]', "cache_dir must be a path (a string), got ['a']"),
    # Repeatable flags: one value or a list of them.
    ("model = 5", "model must be a string or a list of them, got 5"),
    ('audio-dir = ["a", 3]', "audio-dir must be a path (a string) or a list of them, got ['a', 3]"),
    ("osc_allow = [[]]", "osc_allow must be a string or a list of them"),
    # Choices and other strings.
    ("engine = 5", "engine must be a string, got 5"),
    ("device = 1", "device must be a string, got 1"),
    ("log_level = 20", "log_level must be a string, got 20"),
    ('log_level = "info"', "log_level must be one of DEBUG, INFO, WARNING, ERROR, got 'info'"),
    ("output_device = 1.5", "output_device must be a string or an integer, got 1.5"),
])
def test_a_value_of_the_wrong_type_is_refused_naming_the_key(tmp_path: Path, line: str, wanted: str) -> None:
    config = tmp_path / "riffd.toml"
    config.write_text(f'host = "127.0.0.1"\n{line}\n')
    with pytest.raises(InvalidArgument, match=re.escape(wanted)):
        config_from_file(config)


@pytest.mark.parametrize("line", ['play = "false"', 'max_queue = "16"', "model = 5", "engine = 5"])
def test_the_daemon_exits_2_with_one_line_naming_the_key(tmp_path: Path, line: str) -> None:
    config = tmp_path / "riffd.toml"
    config.write_text(line + "\n")
    result = subprocess.run([sys.executable, "-m", "daemon", "--config", str(config), "--out", str(tmp_path / "out")],
                            cwd=REPO, capture_output=True, text=True, timeout=60)
    key = line.split(" = ")[0]
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and f": {key} must be " in result.stderr, result.stderr
    assert not (tmp_path / "out").exists()  # refused before anything started


def test_every_setting_at_its_default_reads_back_as_the_defaults(tmp_path: Path) -> None:
    """A file giving each setting (flag spellings and field names alike) of the right type loads."""
    lines = []
    for number, field in enumerate(dataclasses.fields(DaemonConfig)):
        value = getattr(DaemonConfig(), field.name)
        if value is None:
            continue  # TOML cannot say None: left out, a setting keeps its default
        value = [str(item) for item in value] if isinstance(value, tuple) else value
        value = str(value) if isinstance(value, Path) else value
        key = field.name.replace("_", "-") if number % 2 else field.name
        lines.append(f"{key} = {json.dumps(value)}")  # JSON's strings, numbers and lists are TOML's too
    config = tmp_path / "riffd.toml"
    config.write_text("\n".join(lines) + "\n")
    assert config_from_file(config) == DaemonConfig()


def test_flag_spellings_single_values_and_integer_numbers(tmp_path: Path) -> None:
    config = tmp_path / "riffd.toml"
    config.write_text(f'model = "debug/musicgen"\nout = "{tmp_path / "out"}"\naudio-dir = "/tmp"\nmodel_dir = ["/a", "/b"]\n'
                      'max-duration-s = 300\nbpm = 120\nplay = true\nweb = false\noutput_device = 3\n'
                      'osc_allow = "10.0.0.0/8"\nmax_queue = 4\n')
    loaded = config_from_file(config, "--max-queue", "5")
    assert loaded.models == ("debug/musicgen",) and loaded.out_dir == tmp_path / "out"
    assert loaded.audio_dirs == (Path("/tmp"),) and loaded.model_dirs == (Path("/a"), Path("/b"))
    assert loaded.max_duration_s == 300.0 and isinstance(loaded.max_duration_s, float) and loaded.bpm == 120.0
    assert loaded.play is True and loaded.web is False and loaded.output_device == "3"
    assert loaded.osc_allow == ("10.0.0.0/8",) and loaded.max_queue == 5  # the flag overrides the file
