"""The daemon's settings: defaults, then a TOML config file, then command-line flags.

This is the only module that reads environment variables; each is read by one function below,
at the moment it is needed (`environment_*`), so tests can set them per process.
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemon.config_file import read_settings
from daemon.models.musicgen.engine_choice import AUTO
from daemon.models.musicgen.options import EngineOptions
from protocol.errors import InvalidArgument
from protocol.params import DEFAULT_MAX_DURATION_S

DEFAULT_OSC_PORT = 7400
DEFAULT_ZMQ_PORT = 7401
#: The web studio (daemon/web): http://127.0.0.1:7403/
DEFAULT_WEB_PORT = 7403
#: The model used when neither the request nor `--model` names one.
FALLBACK_MODEL = "facebook/musicgen-small"
DEVICES = ("auto", "cpu", "cuda", "mps")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
#: OSC sources accepted unless --osc-allow says otherwise: this machine only.
LOOPBACK_NETWORKS = ("127.0.0.0/8", "::1/128")
#: Environment variables that make PyTorch's libraries (ATen, MKL, oneDNN, fbgemm) and riffd's kernel
#: build use less of the CPU than it has: how an AVX2-only CPU is emulated on a newer one
#: (`python -m bench.isa`). Engine calibrations are keyed by them, and the bench reports them.
LIBRARY_ISA_VARIABLES = ("ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA",
                         "FBGEMM_ENABLE_INSTRUCTIONS", "RIFFD_NATIVE_CFLAGS")


@dataclass(frozen=True)
class DaemonConfig:
    """Everything `riffd serve` can be told; each field's comment says why it exists."""

    # Loaded and warmed before the daemon reports ready; the first is the default model.
    models: tuple[str, ...] = ()
    # Where models run; "auto" picks CUDA, then MPS, then the CPU.
    device: str = "auto"
    # Loopback by default: a stage machine should not be reachable from the venue's network.
    host: str = "127.0.0.1"
    # Listening anywhere but loopback must be asked for explicitly; it then requires CurveZMQ.
    allow_remote: bool = False
    # Require CurveZMQ on the ZeroMQ endpoints even on loopback (always on for other hosts).
    zmq_curve: bool = False
    # The daemon's CurveZMQ secret key file and a folder of the public keys of allowed
    # clients (both made by `riffd keys`); a client whose key is not there is refused.
    curve_secret_key: Path | None = None
    curve_clients_dir: Path | None = None
    # OSC packets are accepted only from these addresses / networks (others are dropped unread).
    osc_allow: tuple[str, ...] = LOOPBACK_NETWORKS
    # OSC packets a second one source host may send (a burst of as many is allowed); more are
    # dropped unread, so a flood cannot slow the renders of everyone else (0: no limit).
    osc_rate_limit: float = 1000.0
    # ZeroMQ connections served at once (issue 18): a peer beyond them is answered too_many_peers
    # until one hangs up; and requests a second one peer may send (a burst of as many), more are
    # answered rate_limited unread (0: no limit). Each connection costs buffers and a descriptor.
    zmq_max_peers: int = 64
    zmq_rate_limit: float = 200.0
    # Folders a request may name audio inputs from (the --out folder always counts); nothing
    # else on the daemon's disk can be read through a request.
    audio_dirs: tuple[Path, ...] = ()
    # Folders a request may name model folders from (models given with --model always load).
    model_dirs: tuple[Path, ...] = ()
    # OSC listens on this port over both UDP and TCP (0: any free port, for tests).
    osc_port: int = DEFAULT_OSC_PORT
    # ZeroMQ ROUTER for requests; the PUB monitor endpoint is on pub_port (default zmq_port + 1).
    zmq_port: int = DEFAULT_ZMQ_PORT
    pub_port: int | None = None
    # Audio files for OSC clients and saved jobs go here.
    out_dir: Path = Path("riffd-out")
    # The journal of accepted jobs that write files (issue 18), which a daemon started on the same
    # folder resumes; None: `.riffd-state` under out_dir.
    state_dir: Path | None = None
    # Jobs waiting beyond the running ones; one more is refused at once with queue_full.
    max_queue: int = 16
    # Longest render a request may ask for.
    max_duration_s: float = DEFAULT_MAX_DURATION_S
    # Longest audio input (file or inline samples) a request may carry or name.
    max_audio_s: float = 600.0
    # Jobs one client (ZeroMQ peer, OSC TCP connection or UDP address) may have queued or running.
    max_jobs_per_client: int = 8
    # Chunk files under --out are deleted this long after their job ended (0 keeps them).
    chunk_keep_s: float = 600.0
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
    # MusicGen decode mode: 'auto' measures the modes once per model and machine (cached) and runs
    # the fastest whose greedy codes agree with float32's at least 90 % of the time; 'float32'
    # keeps exact parity with transformers; others: see musicgen.speed and the README.
    engine: str = "auto"
    # Playing in time (issue 15): join the Ableton Link session on this machine's networks (its
    # tempo and beat become the daemon's timeline; riffd changes the tempo only when asked).
    link: bool = False
    # Without Link: the daemon's own timeline starts at this tempo (None: at a request's bpm); with
    # Link: the tempo a session riffd founds starts at (None: link.FOUNDING_BPM).
    bpm: float | None = None
    # Appended to the text prompt of a job in time ("{bpm}" becomes its tempo; empty: nothing),
    # since MusicGen was trained on captions that name the tempo this way.
    tempo_prompt: str = "{bpm} bpm"
    # Conform's one-off warm-up (librosa's numba kernels: seconds of CPU, once per process) at start,
    # so that no take or jam pays for it. None: with a tempo source (link, bpm) always, and ready
    # waits for it; without, on a thread beside serving (unless $RIFFD_WARM_CONFORM is 0). False:
    # not at start (the first request in time starts it). Only when the tempo extra is installed.
    warm_conform: bool | None = None
    # Jams (issue 14): how far a jam may run ahead of its listener (what a change waits to be
    # heard), the seconds of its own music each new window starts from (a slide's cost grows with
    # it), the window it runs before sliding (None: the model's), how long a jam whose client is
    # gone (and that does not play here) goes on, the longest jam, and how many may run at once.
    jam_lead_s: float = 1.0
    jam_context_s: float = 4.0
    jam_window_s: float | None = None
    jam_grace_s: float = 10.0
    max_jam_s: float = 4 * 3600.0
    max_jams: int = 4
    # Concurrent MusicGen jobs on one resident model share each decode step (continuous
    # batching): at most this many at once (1: one job at a time), their KV caches within
    # batch_memory_mb (a musicgen-small window's cache: ~0.6 GB in float32, ~0.16 GB in int8).
    max_batch: int = 4
    batch_memory_mb: float = 4096.0
    # A streamed MusicGen job decodes on a thread of its own, ahead of its codec (which turns codes
    # into audio on the job's thread), so the two overlap instead of adding up.
    codec_thread: bool = False
    # The web studio (daemon/web) on the daemon's --host at this port (0: any free port); it
    # idles until a browser connects. Off with --no-web.
    web: bool = True
    web_port: int = DEFAULT_WEB_PORT
    # Model workers on a Ray cluster (issue 19; needs the riffd[ray] extra): None runs models in
    # this process; "" starts a local Ray instance; "auto" joins the cluster this machine is part
    # of; "HOST:PORT" joins that one. The endpoints, queue and files stay in this process.
    ray: str | None = None
    # Ray actors holding models (None: one per GPU of the cluster, at least one), and what each
    # reserves of the cluster (GPUs None: one where the cluster has any, else none).
    ray_workers: int | None = None
    ray_worker_cpus: float = 1.0
    ray_worker_gpus: float | None = None
    # Longest wait for the cluster at start (joining it, or starting a local one): past it the
    # daemon exits with an error rather than wait on an address nobody answers (Ray would retry
    # for many minutes).
    ray_connect_timeout_s: float = 60.0
    # Longest wait for a worker: a control call (ping, stop, unload), a model load, and the gap
    # between two items of a job's stream. Past it the worker counts as lost: the daemon never
    # hangs on a dead or wedged worker.
    ray_call_timeout_s: float = 30.0
    ray_load_timeout_s: float = 900.0
    ray_stream_timeout_s: float = 300.0

    @property
    def default_model(self) -> str:
        return self.models[0] if self.models else FALLBACK_MODEL

    @property
    def resolved_state_dir(self) -> Path:
        return self.state_dir if self.state_dir is not None else self.out_dir / ".riffd-state"

    @property
    def resolved_pub_port(self) -> int:
        if self.pub_port is not None:
            return self.pub_port
        return 0 if self.zmq_port == 0 else self.zmq_port + 1

    @property
    def remote(self) -> bool:
        """Whether the endpoints listen beyond this machine."""
        return not is_loopback_host(self.host)

    @property
    def curve_required(self) -> bool:
        return self.zmq_curve or self.remote

    def validate(self) -> "DaemonConfig":
        if self.remote and not self.allow_remote:
            raise InvalidArgument(f"host {self.host!r} is reachable from other machines: pass --allow-remote "
                                  "(with --curve-secret-key and --curve-clients-dir) to listen there")
        if self.curve_required and (self.curve_secret_key is None or self.curve_clients_dir is None):
            raise InvalidArgument("CurveZMQ needs --curve-secret-key FILE and --curve-clients-dir DIR "
                                  "(make them with `riffd keys`)")
        for network in self.osc_allow:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise InvalidArgument(f"osc_allow: {network!r} is not an IP address or network") from None
        if not (math.isfinite(self.osc_rate_limit) and self.osc_rate_limit >= 0):
            raise InvalidArgument(f"osc_rate_limit must be >= 0 packets/s, got {self.osc_rate_limit}")
        if self.zmq_max_peers < 1:
            raise InvalidArgument(f"zmq_max_peers must be at least 1, got {self.zmq_max_peers}")
        if not (math.isfinite(self.zmq_rate_limit) and self.zmq_rate_limit >= 0):
            raise InvalidArgument(f"zmq_rate_limit must be >= 0 requests/s, got {self.zmq_rate_limit}")
        if self.max_jobs_per_client < 1:
            raise InvalidArgument(f"max_jobs_per_client must be at least 1, got {self.max_jobs_per_client}")
        if not (math.isfinite(self.max_audio_s) and self.max_audio_s > 0):
            raise InvalidArgument(f"max_audio_s must be a positive number, got {self.max_audio_s}")
        if not (math.isfinite(self.chunk_keep_s) and self.chunk_keep_s >= 0):
            raise InvalidArgument(f"chunk_keep_s must be >= 0, got {self.chunk_keep_s}")
        if self.device not in DEVICES:
            raise InvalidArgument(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        if self.log_level not in LOG_LEVELS:
            raise InvalidArgument(f"log_level must be one of {', '.join(LOG_LEVELS)}, got {self.log_level!r}")
        for name in ("osc_port", "zmq_port", "web_port"):
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
        if self.bpm is not None:
            from protocol.tempo import check_bpm

            check_bpm(self.bpm)
        try:
            self.tempo_prompt.format(bpm=120)
        except (KeyError, IndexError, ValueError) as exc:
            raise InvalidArgument(f"tempo_prompt {self.tempo_prompt!r} may only use {{bpm}} ({exc})") from None
        for name in ("jam_lead_s", "jam_context_s", "jam_grace_s", "max_jam_s"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                raise InvalidArgument(f"{name} must be a positive number of seconds, got {getattr(self, name)}")
        if self.jam_window_s is not None and not (math.isfinite(self.jam_window_s)
                                                  and self.jam_window_s > self.jam_context_s):
            raise InvalidArgument(f"jam_window_s must be longer than jam_context_s ({self.jam_context_s} s), "
                                  f"got {self.jam_window_s}")
        if self.max_jams < 0:
            raise InvalidArgument(f"max_jams must be >= 0, got {self.max_jams}")
        if self.engine.strip() != AUTO:  # auto: measured and chosen at load
            EngineOptions.parse(self.engine)
        if not 1 <= self.max_batch <= 64:
            raise InvalidArgument(f"max_batch must be within [1, 64], got {self.max_batch}")
        if not (math.isfinite(self.batch_memory_mb) and self.batch_memory_mb > 0):
            raise InvalidArgument(f"batch_memory_mb must be a positive number, got {self.batch_memory_mb}")
        if self.ray_workers is not None and not 1 <= self.ray_workers <= 1024:
            raise InvalidArgument(f"ray_workers must be within [1, 1024], got {self.ray_workers}")
        for name in ("ray_worker_cpus", "ray_worker_gpus"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise InvalidArgument(f"{name} must be >= 0, got {value}")
        if self.ray not in (None, "", "auto") and not _is_host_port(self.ray):
            raise InvalidArgument(f"--ray takes HOST:PORT (a Ray head's address), 'auto' or nothing (a local Ray "
                                  f"instance), not {self.ray!r}")
        for name in ("ray_connect_timeout_s", "ray_call_timeout_s", "ray_load_timeout_s", "ray_stream_timeout_s"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                raise InvalidArgument(f"{name} must be a positive number of seconds, got {getattr(self, name)}")
        return self


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `riffd serve` / `python -m daemon` flags; each overrides the config file."""
    parser.add_argument("--config", type=Path, help="TOML file with the same settings (keys as the long flags, with _)")
    parser.add_argument("--model", dest="models", action="append", metavar="ID",
                        help="model to keep resident (repeatable; the first is the default)")
    parser.add_argument("--device", choices=DEVICES)
    parser.add_argument("--host", help="interface to listen on (default 127.0.0.1; others need --allow-remote)")
    parser.add_argument("--allow-remote", action="store_const", const=True,
                        help="allow --host to be reachable from other machines (requires CurveZMQ keys)")
    parser.add_argument("--zmq-curve", action="store_const", const=True,
                        help="require CurveZMQ on ZeroMQ even on loopback")
    parser.add_argument("--curve-secret-key", type=Path, metavar="FILE",
                        help="the daemon's CurveZMQ secret key file (from `riffd keys`)")
    parser.add_argument("--curve-clients-dir", type=Path, metavar="DIR",
                        help="folder of allowed clients' public key files (from `riffd keys`)")
    parser.add_argument("--osc-allow", action="append", metavar="ADDR[/BITS]",
                        help="OSC source address or network to accept (repeatable; default loopback only)")
    parser.add_argument("--osc-rate-limit", type=float, metavar="MESSAGES_PER_S",
                        help="OSC messages a second one host may send (a bundle's one by one) before the rest are "
                             "dropped (0: no limit; default 1000)")
    parser.add_argument("--zmq-max-peers", type=int, metavar="N",
                        help="ZeroMQ connections served at once; more are answered too_many_peers (default 64)")
    parser.add_argument("--zmq-rate-limit", type=float, metavar="REQUESTS_PER_S",
                        help="requests a second one ZeroMQ peer may send; more are answered rate_limited (0: no "
                             "limit; default 200)")
    parser.add_argument("--audio-dir", dest="audio_dirs", action="append", type=Path, metavar="DIR",
                        help="folder requests may read audio inputs from (repeatable; --out always counts)")
    parser.add_argument("--osc-port", type=int, help=f"OSC port, UDP and TCP (default {DEFAULT_OSC_PORT})")
    parser.add_argument("--zmq-port", type=int, help=f"ZeroMQ request port (default {DEFAULT_ZMQ_PORT})")
    parser.add_argument("--pub-port", type=int, help="ZeroMQ PUB monitor port (default: zmq port + 1)")
    parser.add_argument("--out", dest="out_dir", type=Path, help="folder for audio files (default ./riffd-out)")
    parser.add_argument("--state-dir", type=Path, metavar="DIR",
                        help="journal of accepted file-writing jobs, resumed by a daemon started on it "
                             "(default OUT/.riffd-state)")
    parser.add_argument("--max-queue", type=int, help="queued jobs before queue_full (default 16)")
    parser.add_argument("--max-duration-s", type=float, help="longest render a request may ask for")
    parser.add_argument("--model-dir", dest="model_dirs", action="append", type=Path, metavar="DIR",
                        help="folder whose model folders requests may load (repeatable)")
    parser.add_argument("--max-audio-s", type=float, help="longest audio input a request may name or carry (default 600)")
    parser.add_argument("--max-jobs-per-client", type=int, help="jobs one client may have queued or running (default 8)")
    parser.add_argument("--chunk-keep-s", type=float,
                        help="delete chunk files this long after their job ended (0: keep; default 600)")
    parser.add_argument("--keep-alive-s", type=float, help="seconds an on-demand model stays loaded unused")
    parser.add_argument("--cache-dir", type=Path, help="where presets are built and models are cached")
    parser.add_argument("--log-level", choices=LOG_LEVELS)
    parser.add_argument("--play", action="store_const", const=True,
                        help="play every job on this machine's sound card (a request's play=false opts out)")
    parser.add_argument("--output-device", metavar="NAME|INDEX", help="sound card for playback (default: the system's)")
    parser.add_argument("--play-buffer-s", type=float, metavar="S",
                        help="playback jitter buffer: a job sounds once this much is buffered (default 0.5)")
    parser.add_argument("--jam-lead-s", type=float, metavar="S",
                        help="how far a jam may run ahead of what its listener played: what a change waits to be "
                             "heard (default 1.0)")
    parser.add_argument("--jam-context-s", type=float, metavar="S",
                        help="seconds of its own music a jam's next window starts from (default 4)")
    parser.add_argument("--jam-window-s", type=float, metavar="S",
                        help="seconds a jam's window runs before it slides on (default: the model's, 30)")
    parser.add_argument("--jam-grace-s", type=float, metavar="S",
                        help="a jam whose client is gone, not playing here, stops after this long (default 10)")
    parser.add_argument("--max-jam-s", type=float, metavar="S", help="the longest a jam runs (default 14400: 4 hours)")
    parser.add_argument("--max-jams", type=int, metavar="N", help="jams running at once (default 4; 0: none)")
    parser.add_argument("--engine", metavar="MODE", help=ENGINE_HELP)
    parser.add_argument("--max-batch", type=int, metavar="N",
                        help="concurrent MusicGen jobs sharing each decode step (continuous batching; default 4, "
                             "1: one at a time)")
    parser.add_argument("--batch-memory-mb", type=float, metavar="MB",
                        help="KV-cache memory the jobs of a batch may hold together (default 4096)")
    parser.add_argument("--codec-thread", action=argparse.BooleanOptionalAction, default=None,
                        help="a streamed MusicGen job decodes on a thread of its own while its codec turns the codes "
                             "into audio on the job's (default: off; the same audio either way)")
    parser.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                        help="run models in workers on a Ray cluster (pip install riffd[ray]): no ADDRESS starts a "
                             "local one, 'auto' joins the cluster this machine is in, HOST:PORT joins that one")
    parser.add_argument("--ray-workers", type=int, metavar="N",
                        help="Ray actors holding models (default: one per GPU of the cluster, at least one)")
    parser.add_argument("--ray-worker-cpus", type=float, metavar="N", help="CPUs each Ray worker reserves (default 1)")
    parser.add_argument("--ray-worker-gpus", type=float, metavar="N",
                        help="GPUs each Ray worker reserves (default: 1 where the cluster has GPUs, else 0)")
    parser.add_argument("--ray-connect-timeout-s", type=float, metavar="S",
                        help="longest wait for the Ray cluster to answer at start, or a local one to start (default 60)")
    parser.add_argument("--ray-call-timeout-s", type=float, metavar="S",
                        help="longest wait for a Ray worker's control call (default 30)")
    parser.add_argument("--ray-load-timeout-s", type=float, metavar="S",
                        help="longest wait for a Ray worker to load a model (default 900)")
    parser.add_argument("--ray-stream-timeout-s", type=float, metavar="S",
                        help="longest gap between two pieces of a job streamed by a Ray worker (default 300)")
    parser.add_argument("--link", action="store_const", const=True,
                        help="join the Ableton Link session on this network: jobs in time follow its tempo and "
                             "beat (riffd changes the session tempo only when a tempo request asks)")
    parser.add_argument("--bpm", type=float,
                        help="the tempo of the daemon's own timeline; with --link, the tempo it founds a Link "
                             "session at when it is the first peer (default 120)")
    parser.add_argument("--tempo-prompt", metavar="TEMPLATE",
                        help="appended to the prompt of a job in time (default '{bpm} bpm'; '' for nothing)")
    parser.add_argument("--warm-conform", action=argparse.BooleanOptionalAction, default=None,
                        help="compile conform's kernels at start (default: yes when riffd's tempo extra is "
                             "installed), so the first take or jam in time does not wait seconds for them")
    parser.add_argument("--web-port", type=int, help=f"web studio port (default {DEFAULT_WEB_PORT}; 0: any free port)")
    parser.add_argument("--no-web", dest="web", action="store_const", const=False,
                        help="do not serve the web studio")


#: `--engine`'s help, shared by `riffd serve` and `riffd render`.
ENGINE_HELP = ("MusicGen decode mode: auto (default: measured once per model and CPU, the fastest mode with at "
               "least 90 %% greedy agreement with float32), float32 (exact parity with transformers), "
               "float32+draft (float32's output, speculative), bfloat16, float16 (GPU), int8, int8a8 (int8 with 8-bit "
               "activations: faster when streams are batched), int8dyn, int4; "
               "+compile compiles the step")


#: Settings a config file may give in more ways than their field's type says.
FILE_TYPES = {"output_device": str | int}  # a sound card's name or its index, as `--output-device 3` gives it


def config_from_args(args: argparse.Namespace) -> DaemonConfig:
    """Defaults, then the config file (--config or $RIFFD_CONFIG), then the flags given."""
    config_path = args.config or environment_config_file()
    settings = read_config_file(config_path) if config_path else {}
    for field in dataclasses.fields(DaemonConfig):
        value = getattr(args, field.name, None)
        if value is not None:
            settings[field.name] = value
    return build_config(settings)


def read_config_file(path: Path) -> dict[str, Any]:
    """The settings in the TOML file at `path`, by field name; a value not of its setting's type is an error."""
    return read_settings(path, DaemonConfig, overrides=FILE_TYPES)


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
    for name in ("out_dir", "state_dir", "cache_dir", "curve_secret_key", "curve_clients_dir"):
        if values.get(name) is not None:
            values[name] = Path(values[name]).expanduser()
    for name in ("audio_dirs", "model_dirs", "osc_allow"):
        if isinstance(values.get(name), (str, Path)):
            values[name] = (values[name],)
    for name in ("audio_dirs", "model_dirs"):
        if values.get(name) is not None:
            values[name] = tuple(Path(folder).expanduser() for folder in values[name])
    if values.get("osc_allow") is not None:
        values["osc_allow"] = tuple(str(network) for network in values["osc_allow"])
    return DaemonConfig(**values).validate()


def library_isa_overrides() -> dict[str, str]:
    """The LIBRARY_ISA_VARIABLES set in this process's environment."""
    return {name: os.environ[name] for name in LIBRARY_ISA_VARIABLES if os.environ.get(name)}


def is_loopback_host(host: str) -> bool:
    """True for names and addresses that only this machine can reach."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # "*", "0.0.0.0"'s spelled-out cousins, interface names: all reachable from outside


def _is_host_port(address: str) -> bool:
    """HOST:PORT, as `ray start --head` prints it (an IPv6 host in brackets)."""
    host, _, port = address.rpartition(":")
    return bool(host) and not any(char.isspace() for char in host) and port.isdigit() and 1 <= int(port) <= 65535


# Environment variables: every one riffd reads, here.
def environment_config_file() -> Path | None:
    """`RIFFD_CONFIG`: a config file used when `--config` is not given."""
    value = os.environ.get("RIFFD_CONFIG")
    return Path(value) if value else None


def environment_native_cflags() -> tuple[str, ...]:
    """`RIFFD_NATIVE_CFLAGS`: extra C compiler flags for riffd's native kernels (e.g. `-mno-avx512f`)."""
    return tuple(os.environ.get("RIFFD_NATIVE_CFLAGS", "").split())


def environment_native_dir() -> Path | None:
    """`RIFFD_NATIVE_DIR`: where built native kernels are cached (default ~/.cache/riffd/native)."""
    value = os.environ.get("RIFFD_NATIVE_DIR")
    return Path(value) if value else None


def environment_c_compiler() -> str:
    """`CC`: the C compiler that builds the native kernels."""
    return os.environ.get("CC", "cc")


def environment_warm_conform() -> bool:
    """`RIFFD_WARM_CONFORM`: 0 leaves conform's warm-up at start to daemons with a tempo source (tests
    starting many daemons set it; the warm-up costs seconds of CPU each)."""
    return os.environ.get("RIFFD_WARM_CONFORM", "1").strip().lower() not in ("0", "false", "no", "off")


def environment_hub_offline() -> bool:
    """`HF_HUB_OFFLINE`: Hugging Face downloads are off."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
