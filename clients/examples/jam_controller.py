"""A jam played from an OSC controller (TouchOSC style): a crossfader between two prompts, faders for
temperature and gain, buttons that save and recall the jam's state mid-set.

    riffd serve --play --model facebook/musicgen-small --engine int8   # the daemon plays the jam
    python -m clients.examples.jam_controller --a "dub techno" --b "tabla groove" --listen 8000

    /1/fader1  0..1     crossfade: prompt A weighted 1 - x, prompt B weighted x
    /1/fader2  0..1     temperature 0.6 .. 1.6
    /1/fader3  0..1     gain on the daemon's sound card
    /1/save{N}  1       snapshot slot N (the daemon writes --out/jams/slot-N.riffdjam)
    /1/recall{N} 1      go on from slot N, sample for sample as it was saved (the jam playing fades out;
                        a slot never saved is refused, and the jam plays on)
    /1/stop     1       fade out and quit
    feedback: /1/label text (what was applied, saved, recalled, or failed), /1/offset seconds of jam audio

A fader moves many times a second: only its latest position is sent, at most every 50 ms, and
each change is answered by `applied` (the sample from which it is heard).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from typing import Any, cast

from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import AsyncIOOSCUDPServer
from pythonosc.udp_client import SimpleUDPClient

from clients import AsyncClient
from clients.aio import AsyncJamHandle
from clients.cli.common import add_connection_arguments, exit_status
from protocol.errors import RiffdError
from protocol.messages import Accepted, Chunk, Done, Error

_SLOT = re.compile(r"/1/(save|recall)(\d+)")
#: Least time between two changes sent for fader moves.
SEND_INTERVAL_S = 0.05


class JamController:
    def __init__(self, client: AsyncClient, args: argparse.Namespace) -> None:
        self.client, self.args = client, args
        self.jam: AsyncJamHandle | None = None
        # Every jam's listener, the recalled-from ones too: quitting waits for each jam's end.
        self._listeners: dict[AsyncJamHandle, asyncio.Task[None]] = {}
        self._wanted: dict[str, float] = {}  # the faders' latest positions, not sent yet
        self._wake = asyncio.Event()
        self._feedback: SimpleUDPClient | None = (
            SimpleUDPClient(*_host_port(args.feedback)) if args.feedback else None)
        self.finished = asyncio.Event()
        self.seconds = 0.0

    # -- the controller ----------------------------------------------------------------------------

    def on_message(self, sender: tuple[str, int], address: str, *args: object) -> None:
        if self._feedback is None:
            self._feedback = SimpleUDPClient(sender[0], self.args.feedback_port)
        value = float(args[0]) if args and isinstance(args[0], (int, float)) else 1.0
        if address in ("/1/fader1", "/1/fader2", "/1/fader3"):
            self._wanted[address] = min(max(value, 0.0), 1.0)
            self._wake.set()
        elif (slot := _SLOT.fullmatch(address)) and value > 0:
            action = self._save if slot[1] == "save" else self._recall
            asyncio.get_running_loop().create_task(action(int(slot[2])))
        elif address == "/1/stop" and value > 0:
            asyncio.get_running_loop().create_task(self._stop())

    # -- the jam -------------------------------------------------------------------------------------

    async def start(self, **options: Any) -> Error | None:
        """Start a jam and wait for the daemon's answer: None once accepted (the faders steer it from
        then on), else its refusal (the jam steered so far stays the one steered)."""
        jam = self.client.jam(model=self.args.model, play=not self.args.no_play, **options)
        answer: asyncio.Future[Error | None] = asyncio.get_running_loop().create_future()
        self._listeners[jam] = asyncio.get_running_loop().create_task(self._listen(jam, answer))
        refusal = await answer
        if refusal is None:
            self.jam = jam
        return refusal

    async def _listen(self, jam: AsyncJamHandle, answer: asyncio.Future[Error | None]) -> None:
        """Read the jam's events (its acceptance or refusal, chunks when not playing on the daemon, its end)."""
        try:
            async for event in jam:
                if isinstance(event, Accepted) and not answer.done():
                    answer.set_result(None)
                elif isinstance(event, Chunk):
                    self.seconds = (event.offset_samples + event.frames) / event.sample_rate
                    self._send("/1/offset", round(self.seconds, 2))
                elif isinstance(event, Error):
                    print(f"jam {jam.jam}: error {event.code}: {event.message}", flush=True)
                    if not answer.done():
                        answer.set_result(event)
                elif isinstance(event, Done):
                    print(f"jam {jam.jam}: done, {event.frames / max(event.sample_rate, 1):.2f} s", flush=True)
        finally:
            if not answer.done():  # the stream failed before any answer (a timeout)
                answer.set_result(Error(job=jam.jam, code="timeout", message="no answer from the daemon"))

    async def send_changes(self) -> None:
        """The faders' latest positions, at most every SEND_INTERVAL_S: weights, temperature, gain."""
        while not self.finished.is_set():
            await self._wake.wait()
            self._wake.clear()
            wanted, self._wanted = self._wanted, {}
            if self.jam is None:
                continue
            try:
                if "/1/fader1" in wanted:
                    x = wanted["/1/fader1"]
                    # Weights are relative; at the ends one prompt alone plays.
                    applied = await self.jam.prompts({self.args.a: round(1 - x, 3), self.args.b: round(x, 3)})
                    self._tell(f"blend {x:.2f}", applied.offset_samples)
                if "/1/fader2" in wanted:
                    applied = await self.jam.set(temperature=round(0.6 + wanted["/1/fader2"], 3))
                    self._tell(f"temperature {0.6 + wanted['/1/fader2']:.2f}", applied.offset_samples)
                if "/1/fader3" in wanted:
                    applied = await self.jam.set(gain=round(wanted["/1/fader3"], 3))
                    self._tell(f"gain {wanted['/1/fader3']:.2f}", applied.offset_samples)
            except RiffdError as exc:
                print(f"change refused: {exc.message} [{exc.code}]", flush=True)
            await asyncio.sleep(SEND_INTERVAL_S)

    async def _save(self, slot: int) -> None:
        if self.jam is None:
            return
        try:
            saved = await self.jam.snapshot(f"slot-{slot}")
        except RiffdError as exc:
            self._failed(f"save {slot}", exc.code, exc.message)
            return
        print(f"saved slot {slot}: {saved.path} at {saved.offset_samples} samples", flush=True)
        self._send("/1/label", f"saved {slot}")

    async def _recall(self, slot: int) -> None:
        """Go on from a saved state: the resumed jam starts, then the old one fades out. Stopping the
        old one first would leave silence when the slot was never saved, which only the daemon knows."""
        old = self.jam
        refusal = await self.start(resume=f"slot-{slot}")
        if refusal is not None and refusal.code == "too_many_jobs" and old is not None:
            # No room beside the old jam (--max-jams); the slot exists (the daemon checks that first).
            await self._retire(old)
            await self._listeners[old]
            refusal = await self.start(resume=f"slot-{slot}")
        if refusal is not None:
            self._failed(f"recall {slot}", refusal.code, refusal.message)
            return
        if old is not None:
            await self._retire(old)
        print(f"recalled slot {slot} as jam {self.jam.jam if self.jam else '?'}", flush=True)
        self._send("/1/label", f"recalled {slot}")

    async def _stop(self) -> None:
        try:
            if self.jam is not None:
                await self._retire(self.jam)
        finally:
            # A recalled-from jam may still be fading out when stop comes: its end is waited for too,
            # or the program would quit before that jam's `done`.
            await asyncio.gather(*self._listeners.values(), return_exceptions=True)
            self.finished.set()
            self._wake.set()

    async def _retire(self, jam: AsyncJamHandle) -> None:
        """Stop a jam; one that ended already (its duration, the daemon's doing) needs nothing."""
        if jam.finished:
            return
        try:
            await jam.stop()
        except RiffdError as exc:
            print(f"jam {jam.jam}: stop: {exc.message} [{exc.code}]", flush=True)

    def _failed(self, what: str, code: str, message: str) -> None:
        print(f"{what} failed: {message} [{code}]", flush=True)
        self._send("/1/label", f"{what} failed")

    def _tell(self, what: str, offset_samples: int) -> None:
        print(f"applied {what} from {offset_samples} samples", flush=True)
        self._send("/1/label", what)

    def _send(self, address: str, value: Any) -> None:
        if self._feedback is not None:
            self._feedback.send_message(address, value)


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


async def run(args: argparse.Namespace) -> int:
    async with AsyncClient(args.endpoint, timeout_s=args.timeout) as client:
        controller = JamController(client, args)
        refusal = await controller.start(prompt=args.a, seed=args.seed)
        if refusal is not None:
            return 1
        dispatcher = Dispatcher()
        dispatcher.set_default_handler(controller.on_message, needs_reply_address=True)
        server = AsyncIOOSCUDPServer(("127.0.0.1" if args.local else "0.0.0.0", args.listen), dispatcher,
                                     cast(asyncio.BaseEventLoop, asyncio.get_running_loop()))
        transport, _ = await server.create_serve_endpoint()
        sender = asyncio.get_running_loop().create_task(controller.send_changes())
        print(f"listening for the controller on port {transport.get_extra_info('sockname')[1]}; "
              f"jam {controller.jam.jam if controller.jam else '?'}", flush=True)
        try:
            await controller.finished.wait()
        finally:
            transport.close()
            sender.cancel()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clients.examples.jam_controller",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--a", default="dub techno, deep chords, 120 bpm", help="the prompt at the fader's left")
    parser.add_argument("--b", default="tabla and hand percussion groove, 120 bpm", help="the prompt at its right")
    parser.add_argument("--seed", type=int, help="seed of the jam (default: the daemon draws one)")
    parser.add_argument("--listen", type=int, default=8000, help="UDP port for the controller (default 8000)")
    parser.add_argument("--local", action="store_true", help="listen on 127.0.0.1 only")
    parser.add_argument("--feedback", metavar="HOST:PORT", help="where feedback goes (default: the controller)")
    parser.add_argument("--feedback-port", type=int, default=9000, help="controller's port for feedback (9000)")
    parser.add_argument("--model", help="model id (default: the daemon's)")
    parser.add_argument("--no-play", action="store_true", help="do not play on the daemon's sound card")
    add_connection_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return exit_status(lambda: asyncio.run(run(args)))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
