"""Starting real daemons for tests: in-process on a thread (fast), on free 127.0.0.1 ports.

Also a fake backend, for what the real models cannot be made to do on demand (take long
enough to cancel, fail to load, crash mid-stream). Imported by the conftests of
tests/daemon and tests/clients (tests/ is on sys.path through tests/conftest.py).
"""

from __future__ import annotations

import socket
import tempfile
import threading
import time
import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from daemon.audio.types import AudioChunk
from daemon.backend import JobContext, ProgressFn, StopFn
from daemon.config import DaemonConfig, build_config
from daemon.embedded import DaemonThread  # noqa: F401 - tests import it from here
from daemon.jobs import Job
from protocol.errors import Cancelled, ModelUnavailable, UnknownModel, Unsupported
from protocol.messages import Continue, Generate
from protocol.params import GenerationParams


@dataclass
class FakeBackend:
    """A deterministic tone generator shaped like a model: steps, progress, stop, chunks.

    Model ids choose the behaviour: `fake/fast`, `fake/slow` (50 ms a step), `fake/crash`
    (raises mid-stream), `fake/broken` (fails to load), anything else unknown.
    """

    model_id: str
    sample_rate: int = 16000
    audio_channels: int = 1
    supports_melody: bool = False
    chunk_s: float = 0.25
    step_s: float = 0.0
    crash_after_chunks: int | None = None
    concurrent: int = 1  # jobs that may run at once (a batching model's streams)
    running: list[str] = dataclasses.field(default_factory=list)

    def concurrent_jobs(self, job: Job) -> int:
        return self.concurrent

    def batched_jobs(self) -> tuple[str, ...]:
        return tuple(self.running) if self.concurrent > 1 else ()

    def run_job(self, job: Job, context: JobContext) -> Iterator[AudioChunk]:
        if not isinstance(job.request, (Generate, Continue)):
            raise Unsupported(f"{job.request.TYPE} needs a Jukebox model; {self.model_id} is a fake MusicGen")
        # Read the inputs as a real backend does, so their errors (missing, too long) reach the client.
        request = job.request
        for source in ([request.audio_prompt, request.melody] if isinstance(request, Generate) else [request.audio]):
            context.read_audio(source)
        return self._tracked(job.id, self.stream(dataclasses.replace(job.params, seed=context.seed),
                                                 progress=context.progress, should_stop=context.should_stop))

    def _tracked(self, job_id: str, chunks: Iterator[AudioChunk]) -> Iterator[AudioChunk]:
        self.running.append(job_id)
        try:
            yield from chunks
        finally:
            self.running.remove(job_id)

    def stream(self, params: GenerationParams, *, progress: ProgressFn | None = None,
               should_stop: StopFn | None = None) -> Iterator[AudioChunk]:
        total_frames = int(round(params.duration_s * self.sample_rate))
        chunk_frames = int(self.chunk_s * self.sample_rate)
        steps = -(-total_frames // chunk_frames)
        frequency = 220.0 + (params.seed or 0) % 500
        for index in range(steps):
            if should_stop is not None and should_stop():
                raise Cancelled("stopped")
            if self.step_s:
                time.sleep(self.step_s)
            if self.crash_after_chunks is not None and index >= self.crash_after_chunks:
                raise RuntimeError("simulated backend failure")
            start = index * chunk_frames
            frames = min(chunk_frames, total_frames - start)
            t = (start + np.arange(frames)) / self.sample_rate
            tone = (0.5 * np.sin(2 * np.pi * frequency * t)).astype(np.float32)
            if progress is not None:
                progress(index + 1, steps)
            yield AudioChunk(index, start, np.tile(tone, (self.audio_channels, 1)), self.sample_rate)


def fake_loader(model_id: str, device: str) -> FakeBackend:
    if model_id == "fake/fast":
        return FakeBackend(model_id)
    if model_id == "fake/stereo":
        return FakeBackend(model_id, audio_channels=2)
    if model_id == "fake/slow":
        return FakeBackend(model_id, step_s=0.05)
    if model_id == "fake/batch":  # up to 2 jobs at once, as a batching model runs them
        return FakeBackend(model_id, step_s=0.05, concurrent=2)
    if model_id == "fake/crash":
        return FakeBackend(model_id, crash_after_chunks=1)
    if model_id == "fake/broken":
        raise ModelUnavailable("fake/broken cannot be loaded: simulated out of memory")
    raise UnknownModel(f"no model {model_id!r}")


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 right now."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port")


def make_config(out_dir: Path, **settings: object) -> DaemonConfig:
    """A test config: loopback, free ports (UDP+TCP for OSC), files under `out_dir`."""
    # Tests keep their input files and model folders under the system's temporary folder.
    base: dict[str, object] = dict(host="127.0.0.1", osc_port=0, zmq_port=0, pub_port=0, web_port=0, out_dir=out_dir,
                                   device="cpu", log_level="DEBUG", audio_dirs=(tempfile.gettempdir(),),
                                   model_dirs=(tempfile.gettempdir(),),
                                   # float32: tests compare a daemon's audio with in-process renders;
                                   # `auto` is tested on its own (tests/musicgen/test_engine_choice.py).
                                   engine="float32")
    base.update(settings)
    return build_config(base)


def start_fake_daemon(out_dir: Path, **settings: object) -> DaemonThread:
    settings.setdefault("models", ("fake/fast",))
    return DaemonThread(make_config(out_dir, **settings), loader=fake_loader).start()


def wait_for(predicate: Callable[[], bool], timeout_s: float = 10.0, interval_s: float = 0.01) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(interval_s)


# --------------------------------------------------------------------------------------------
# OSC peers: liblo's oscdump as a listener, and a Python UDP/TCP peer that reads its replies.


@dataclass(frozen=True)
class OscLine:
    """One message as oscdump printed it."""

    address: str
    types: str
    args: tuple


def parse_oscdump_line(line: str) -> OscLine | None:
    """`<timetag> /address types args...` (strings quoted) -> OscLine."""
    import shlex

    parts = shlex.split(line.strip())
    if len(parts) < 2 or not parts[1].startswith("/"):
        return None
    address = parts[1]
    types = parts[2] if len(parts) > 2 else ""
    values = parts[3:]
    args = []
    for tag, value in zip(types, values):
        args.append(int(value) if tag in "ih" else float(value) if tag in "fd" else value)
    return OscLine(address, types, tuple(args))


class OscDump:
    """`oscdump -L PORT` (UDP) or `oscdump -L osc.tcp://:PORT`, its lines collected on a thread."""

    def __init__(self, port: int | None = None, *, tcp: bool = False) -> None:
        import subprocess

        self.port = port or free_port()
        target = f"osc.tcp://:{self.port}" if tcp else str(self.port)
        self._process = subprocess.Popen(["oscdump", "-L", target], stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, text=True)
        self.lines: list[OscLine] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._wait_listening()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for raw in self._process.stdout:
            line = parse_oscdump_line(raw)
            if line is not None:
                with self._cond:
                    self.lines.append(line)
                    self._cond.notify_all()

    def _wait_listening(self) -> None:
        from pythonosc.osc_message_builder import OscMessageBuilder

        probe = OscMessageBuilder("/probe").build().dgram
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for _ in range(200):
                sock.sendto(probe, ("127.0.0.1", self.port))
                if self.wait_for(lambda line: line.address == "/probe", timeout_s=0.05):
                    return
        raise TimeoutError("oscdump did not start listening")

    def wait_for(self, match: Callable[[OscLine], bool], timeout_s: float = 30.0) -> OscLine | None:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                for line in self.lines:
                    if match(line):
                        return line
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)

    def messages(self, prefix: str = "/riffd/") -> list[OscLine]:
        with self._cond:
            return [line for line in self.lines if line.address.startswith(prefix)]

    def close(self) -> None:
        self._process.terminate()
        self._process.wait(10)

    def __enter__(self) -> "OscDump":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def oscsend(*args: str | int | float, url: str) -> None:
    """Run liblo's `oscsend URL ADDRESS TYPES VALUES...`."""
    import subprocess

    subprocess.run(["oscsend", url, *map(str, args)], check=True, timeout=10)


class OscPeer:
    """A Python OSC peer on UDP: sends packets from a fixed port and reads the daemon's replies."""

    def __init__(self, daemon_port: int) -> None:
        self._daemon = ("127.0.0.1", daemon_port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(10.0)

    def send(self, address: str, *args: object) -> None:
        from pythonosc.osc_message_builder import OscMessageBuilder

        builder = OscMessageBuilder(address)
        for arg in args:
            builder.add_arg(arg)
        self.sock.sendto(builder.build().dgram, self._daemon)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendto(data, self._daemon)

    def receive(self) -> tuple[str, list]:
        from protocol.osc import parse_packet

        [(address, args)] = parse_packet(self.sock.recv(65536))
        return address, args

    def receive_until(self, address: str, job: str | None = None) -> list[tuple[str, list]]:
        """Every message up to and including the first at `address` (for `job`, if given)."""
        seen = []
        while True:
            message = self.receive()
            seen.append(message)
            if message[0] == address and (job is None or message[1][0] == job):
                return seen

    def close(self) -> None:
        self.sock.close()


class Monitor:
    """A SUB socket on the daemon's PUB endpoint, decoding every event."""

    def __init__(self, endpoint: str) -> None:
        import zmq

        self._zmq = zmq
        self._context = zmq.Context()
        self.sock = self._context.socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SUBSCRIBE, b"")
        self.sock.connect(endpoint)

    def sync(self, client) -> None:
        """Wait until the subscription is live (PUB/SUB joins asynchronously), then drain."""
        for _ in range(200):
            client.status()
            if self.sock.poll(50):
                while self.sock.poll(100):
                    self.sock.recv_multipart()
                return
        raise TimeoutError("monitor never joined")

    def events_until(self, stop: Callable[[object], bool], timeout_s: float = 20.0) -> list:
        from protocol import wire

        events = []
        deadline = time.monotonic() + timeout_s
        while True:
            remaining_ms = int((deadline - time.monotonic()) * 1000)
            if remaining_ms <= 0 or not self.sock.poll(remaining_ms):
                raise TimeoutError(f"monitor: no matching event; saw {[e.TYPE for e in events]}")
            _, *frames = self.sock.recv_multipart()
            event = wire.decode_event(frames)
            events.append(event)
            if stop(event):
                return events

    def close(self) -> None:
        self.sock.close()
        self._context.term()

    def __enter__(self) -> "Monitor":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
