"""Live pads: an OSC controller (TouchOSC style) triggers generations that play on the daemon.

    riffd serve --play --model facebook/musicgen-small        # the daemon plays what it makes
    python -m clients.examples.live_pads --pads pads.toml --listen 8000

Point the controller at this machine, port 8000 (TouchOSC's default outgoing port); feedback
goes back to the controller's address at --feedback-port (TouchOSC's incoming, 9000).

    /1/push1 .. /1/push16  1    trigger pad N; again while it still sounds: cancel and retrigger
    /1/fader1  0..1             duration of the next takes (--min-duration .. --max-duration)
    /1/fader2  0..1             temperature 0.5 .. 1.5
    /1/fader3  0..1             gain on the daemon's mixer
    /1/toggle1 0/1              lock seeds: a pad plays the same take again
    /1/stop    1                cancel every pad
    feedback: /1/label{N} text, /1/led{N} progress 0..1

Each take is one self-contained request (prompt, seed, duration, temperature, gain, play=true,
a live priority that jumps queued renders); the faders only change what the next request says.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import AsyncIOOSCUDPServer
from pythonosc.udp_client import SimpleUDPClient

from clients import AsyncClient
from clients.cli.common import add_connection_arguments, exit_status
from clients.curve import CurveClientKeys
from protocol.messages import Accepted, Done, Error, Progress, Started

#: Live takes jump ahead of queued renders (which use the default priority 0).
LIVE_PRIORITY = 100
DEFAULT_PADS = (
    "punchy four on the floor drums, 124 bpm",
    "warm analog bass line, 124 bpm",
    "shimmering pad chords in A minor",
    "funky clavinet riff, 124 bpm",
)
_PUSH = re.compile(r"/1/push(\d+)")


@dataclass(frozen=True)
class Pad:
    prompt: str
    # Fixed per pad when given; otherwise the duration fader decides.
    duration_s: float | None = None
    # A fixed seed makes the pad always play the same take.
    seed: int | None = None


@dataclass
class Surface:
    """Where the controller's faders and toggles stand (what the next request will say)."""

    min_duration_s: float
    max_duration_s: float
    duration_s: float
    temperature: float = 1.0
    gain: float = 1.0
    lock_seeds: bool = False
    locked: dict[int, int] = field(default_factory=dict)

    def seed_for(self, pad_number: int, pad: Pad) -> int:
        if pad.seed is not None:
            return pad.seed
        if self.lock_seeds:
            return self.locked.setdefault(pad_number, random.randrange(2**31))
        return random.randrange(2**31)


def load_pads(path: Path | None) -> list[Pad]:
    """`[[pad]]` tables with prompt (and optional duration_s, seed) from a TOML file."""
    if path is None:
        return [Pad(prompt) for prompt in DEFAULT_PADS]
    with open(path, "rb") as handle:
        tables = tomllib.load(handle).get("pad", [])
    if not tables:
        raise SystemExit(f"{path}: no [[pad]] tables")
    return [Pad(str(t["prompt"]), t.get("duration_s"), t.get("seed")) for t in tables]


class LivePads:
    def __init__(self, client: AsyncClient, pads: list[Pad], surface: Surface, *, model: str | None,
                 feedback_port: int, feedback_host: str | None, max_jobs: int | None) -> None:
        self.client = client
        self.pads = pads
        self.surface = surface
        self.model = model
        self._feedback_port = feedback_port
        self._feedback: SimpleUDPClient | None = (
            SimpleUDPClient(feedback_host, feedback_port) if feedback_host else None)
        self._takes: dict[int, asyncio.Task[None]] = {}
        self._max_jobs = max_jobs
        self._ended = 0
        self.finished = asyncio.Event()

    def on_message(self, sender: tuple[str, int], address: str, *args: object) -> None:
        """Every controller message (python-osc's default handler)."""
        if self._feedback is None:
            self._feedback = SimpleUDPClient(sender[0], self._feedback_port)
        value = float(args[0]) if args and isinstance(args[0], (int, float)) else 1.0
        s = self.surface
        if (push := _PUSH.fullmatch(address)) and value > 0:  # a press, not the release
            self.trigger(int(push[1]))
        elif address == "/1/fader1":
            s.duration_s = round(s.min_duration_s + value * (s.max_duration_s - s.min_duration_s), 2)
        elif address == "/1/fader2":
            s.temperature = round(0.5 + value, 3)
        elif address == "/1/fader3":
            s.gain = round(min(max(value, 0.0), 1.0), 3)
        elif address == "/1/toggle1":
            s.lock_seeds = value > 0
        elif address == "/1/stop" and value > 0:
            for task in self._takes.values():
                task.cancel()

    def trigger(self, number: int) -> None:
        if not 1 <= number <= len(self.pads):
            self._send(f"/1/label{number}", "no pad")
            return
        running = self._takes.get(number)
        if running is not None and not running.done():
            running.cancel()  # its stream's exit cancels the job on the daemon
        self._takes[number] = asyncio.get_running_loop().create_task(self._take(number))

    async def _take(self, number: int) -> None:
        pad, s = self.pads[number - 1], self.surface
        seed = s.seed_for(number, pad)
        stream = self.client.generate(pad.prompt, duration_s=pad.duration_s or s.duration_s, model=self.model,
                                      seed=seed, temperature=s.temperature, gain=s.gain, play=True,
                                      priority=LIVE_PRIORITY)
        outcome = "cancelled"
        try:
            async with stream:
                async for event in stream:
                    if isinstance(event, Accepted):
                        self._send(f"/1/label{number}", "queued" if event.queue_position else "starting")
                    elif isinstance(event, Started):
                        self._send(f"/1/label{number}", "playing")
                    elif isinstance(event, Progress):
                        self._send(f"/1/led{number}", event.done / max(event.total, 1))
                    elif isinstance(event, Done):
                        outcome = f"done frames={event.frames} seed={seed}"
                    elif isinstance(event, Error):
                        outcome = f"error {event.code}: {event.message}"
        finally:
            self._send(f"/1/label{number}", outcome.split(" frames")[0])
            print(f"pad {number}: job={stream.job} {outcome}", flush=True)
            self._ended += 1
            if self._max_jobs is not None and self._ended >= self._max_jobs:
                self.finished.set()

    def _send(self, address: str, value: str | float) -> None:
        if self._feedback is not None:
            self._feedback.send_message(address, value)


async def run(args: argparse.Namespace) -> int:
    pads = load_pads(args.pads)
    surface = Surface(args.min_duration, args.max_duration, duration_s=args.min_duration)
    host, _, port = args.feedback.rpartition(":") if args.feedback else (None, "", str(args.feedback_port))
    async with AsyncClient(args.endpoint, timeout_s=args.timeout, curve=_curve(args)) as client:
        live = LivePads(client, pads, surface, model=args.model, feedback_port=int(port), feedback_host=host or None,
                        max_jobs=args.max_jobs)
        dispatcher = Dispatcher()
        dispatcher.set_default_handler(live.on_message, needs_reply_address=True)
        server = AsyncIOOSCUDPServer(("127.0.0.1" if args.local else "0.0.0.0", args.listen), dispatcher,
                                     cast(asyncio.BaseEventLoop, asyncio.get_running_loop()))
        transport, _ = await server.create_serve_endpoint()
        print(f"listening for the controller on port {transport.get_extra_info('sockname')[1]}, "
              f"{len(pads)} pads", flush=True)
        try:
            await live.finished.wait()
        finally:
            transport.close()
    return 0


def _curve(args: argparse.Namespace) -> CurveClientKeys | None:
    """CurveZMQ keys for a daemon that requires them (both files, or neither)."""
    if not (args.curve_secret_key or args.curve_server_key):
        return None
    if not (args.curve_secret_key and args.curve_server_key):
        raise SystemExit("CurveZMQ needs both --curve-secret-key and --curve-server-key")
    return CurveClientKeys.load(args.curve_secret_key, args.curve_server_key)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clients.examples.live_pads", description=__doc__.splitlines()[0])
    parser.add_argument("--pads", type=Path, help="TOML file of [[pad]] tables (prompt, duration_s, seed)")
    parser.add_argument("--listen", type=int, default=8000, help="UDP port for the controller (default 8000)")
    parser.add_argument("--local", action="store_true", help="listen on 127.0.0.1 only")
    parser.add_argument("--feedback", metavar="HOST:PORT", help="where feedback goes (default: the controller)")
    parser.add_argument("--feedback-port", type=int, default=9000, help="controller's port for feedback (9000)")
    parser.add_argument("--model", help="model id (default: the daemon's)")
    parser.add_argument("--min-duration", type=float, default=4.0, help="fader1 at 0 (seconds, default 4)")
    parser.add_argument("--max-duration", type=float, default=30.0, help="fader1 at 1 (seconds, default 30)")
    add_connection_arguments(parser)  # --endpoint, --timeout, CurveZMQ keys for a remote daemon
    parser.add_argument("--max-jobs", type=int, help="exit after this many takes ended (for scripts and tests)")
    args = parser.parse_args(argv)
    try:
        return exit_status(lambda: asyncio.run(run(args)))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
