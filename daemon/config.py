"""The daemon's settings: defaults, then a TOML config file, then command-line flags.

This is the only module that reads environment variables (`RIFFD_CONFIG`: a config file used
when `--config` is not given).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from protocol.errors import InvalidArgument
from protocol.params import DEFAULT_MAX_DURATION_S

DEFAULT_OSC_PORT = 7400
DEFAULT_ZMQ_PORT = 7401
#: The model used when neither the request nor `--model` names one.
FALLBACK_MODEL = "facebook/musicgen-small"
DEVICES = ("auto", "cpu", "cuda", "mps")


@dataclass(frozen=True)
class DaemonConfig:
    """Everything `riffd serve` can be told; each field's comment says why it exists."""

    # Loaded and warmed before the daemon reports ready; the first is the default model.
    models: tuple[str, ...] = ()
    # Where models run; "auto" picks CUDA, then MPS, then the CPU.
    device: str = "auto"
    # Loopback by default: a stage machine should not be reachable from the venue's network.
    host: str = "127.0.0.1"
    # OSC listens on this port over both UDP and TCP (0: any free port, for tests).
    osc_port: int = DEFAULT_OSC_PORT
    # ZeroMQ ROUTER for requests; the PUB monitor endpoint is on pub_port (default zmq_port + 1).
    zmq_port: int = DEFAULT_ZMQ_PORT
    pub_port: int | None = None
    # Audio files for OSC clients and saved jobs go here.
    out_dir: Path = Path("riffd-out")
    # Jobs waiting beyond the running ones; one more is refused at once with queue_full.
    max_queue: int = 16
    # Longest render a request may ask for.
    max_duration_s: float = DEFAULT_MAX_DURATION_S
    # A model loaded on demand is unloaded after this long unused (models given with --model stay).
    keep_alive_s: float = 300.0
    # Where presets are built and models are looked up (None: the registry's default).
    cache_dir: Path | None = None
    log_level: str = "INFO"
    # Playback on this machine's sound card (issue 5): with `play`, every job is played unless
    # its request says play=false; without it, requests with play=true still are.
    play: bool = False
    # PortAudio output device: an index or part of its name (None: the system's default output).
    output_device: str | None = None
    # Jitter buffer: a job sounds once this much of it is buffered (more: fewer dropouts).
    play_buffer_s: float = 0.5

    @property
    def default_model(self) -> str:
        return self.models[0] if self.models else FALLBACK_MODEL

    @property
    def resolved_pub_port(self) -> int:
        if self.pub_port is not None:
            return self.pub_port
        return 0 if self.zmq_port == 0 else self.zmq_port + 1

    def validate(self) -> "DaemonConfig":
        if self.device not in DEVICES:
            raise InvalidArgument(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        for name in ("osc_port", "zmq_port"):
            if not 0 <= getattr(self, name) <= 65535:
                raise InvalidArgument(f"{name} must be within [0, 65535], got {getattr(self, name)}")
        if self.pub_port is not None and not 0 <= self.pub_port <= 65535:
            raise InvalidArgument(f"pub_port must be within [0, 65535], got {self.pub_port}")
        if self.max_queue < 1:
            raise InvalidArgument(f"max_queue must be at least 1, got {self.max_queue}")
        if not (math.isfinite(self.max_duration_s) and self.max_duration_s > 0):
            raise InvalidArgument(f"max_duration_s must be a positive number, got {self.max_duration_s}")
        if not self.keep_alive_s >= 0:
            raise InvalidArgument(f"keep_alive_s must be >= 0, got {self.keep_alive_s}")
        if not 0.0 <= self.play_buffer_s <= 30.0:
            raise InvalidArgument(f"play_buffer_s must be within [0, 30] s, got {self.play_buffer_s}")
        return self


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `riffd serve` / `python -m daemon` flags; each overrides the config file."""
    parser.add_argument("--config", type=Path, help="TOML file with the same settings (keys as the long flags, with _)")
    parser.add_argument("--model", dest="models", action="append", metavar="ID",
                        help="model to keep resident (repeatable; the first is the default)")
    parser.add_argument("--device", choices=DEVICES)
    parser.add_argument("--host", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--osc-port", type=int, help=f"OSC port, UDP and TCP (default {DEFAULT_OSC_PORT})")
    parser.add_argument("--zmq-port", type=int, help=f"ZeroMQ request port (default {DEFAULT_ZMQ_PORT})")
    parser.add_argument("--pub-port", type=int, help="ZeroMQ PUB monitor port (default: zmq port + 1)")
    parser.add_argument("--out", dest="out_dir", type=Path, help="folder for audio files (default ./riffd-out)")
    parser.add_argument("--max-queue", type=int, help="queued jobs before queue_full (default 16)")
    parser.add_argument("--max-duration-s", type=float, help="longest render a request may ask for")
    parser.add_argument("--keep-alive-s", type=float, help="seconds an on-demand model stays loaded unused")
    parser.add_argument("--cache-dir", type=Path, help="where presets are built and models are cached")
    parser.add_argument("--log-level", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    parser.add_argument("--play", action="store_const", const=True,
                        help="play every job on this machine's sound card (a request's play=false opts out)")
    parser.add_argument("--output-device", metavar="NAME|INDEX", help="sound card for playback (default: the system's)")
    parser.add_argument("--play-buffer-s", type=float, metavar="S",
                        help="playback jitter buffer: a job sounds once this much is buffered (default 0.5)")


def config_from_args(args: argparse.Namespace) -> DaemonConfig:
    """Defaults, then the config file (--config or $RIFFD_CONFIG), then the flags given."""
    config_path = args.config or (Path(os.environ["RIFFD_CONFIG"]) if os.environ.get("RIFFD_CONFIG") else None)
    settings: dict[str, Any] = read_config_file(config_path) if config_path else {}
    for field in dataclasses.fields(DaemonConfig):
        value = getattr(args, field.name, None)
        if value is not None:
            settings[field.name] = value
    return build_config(settings)


def read_config_file(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise InvalidArgument(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidArgument(f"config file {path} is not valid TOML: {exc}") from None
    # Accept the flag spellings too (out, max-queue) so a file reads like the command line.
    aliases = {"out": "out_dir", "model": "models"}
    return {aliases.get(key.replace("-", "_"), key.replace("-", "_")): value for key, value in data.items()}


def build_config(settings: dict[str, Any]) -> DaemonConfig:
    """A validated config from a settings dict (unknown keys are an error, not ignored)."""
    known = {field.name: field for field in dataclasses.fields(DaemonConfig)}
    unknown = sorted(set(settings) - set(known))
    if unknown:
        raise InvalidArgument(f"unknown setting {unknown[0]!r} (known: {', '.join(sorted(known))})")
    values = dict(settings)
    if "models" in values:
        models = values["models"]
        values["models"] = (models,) if isinstance(models, str) else tuple(models)
    if values.get("output_device") is not None:
        values["output_device"] = str(values["output_device"])  # a config file may give an index
    for name in ("out_dir", "cache_dir"):
        if values.get(name) is not None:
            values[name] = Path(values[name]).expanduser()
    return DaemonConfig(**values).validate()
