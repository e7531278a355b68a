"""The live pads recipe, driven like a TouchOSC controller: real OSC in, a real daemon, feedback out."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

from recipe_harness import ROOT, RecipeDaemon
from pythonosc.osc_message_builder import OscMessageBuilder

from clients.examples.live_pads import LIVE_PRIORITY
from protocol.messages import Generate
from protocol.osc import parse_packet


class Controller:
    """The controller side: sends presses and faders, collects the feedback the recipe sends."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.feedback: list[tuple[str, list]] = []
        self.target: tuple[str, int] | None = None

    def send(self, address: str, value: float) -> None:
        builder = OscMessageBuilder(address)
        builder.add_arg(value)
        assert self.target is not None
        self.sock.sendto(builder.build().dgram, self.target)

    def wait_for(self, address: str, predicate, timeout_s: float = 30.0) -> list:  # noqa: ANN001
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for seen_address, args in self.feedback:
                if seen_address == address and predicate(args):
                    return args
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                self.feedback.extend(parse_packet(self.sock.recv(65536)))
            except TimeoutError:
                break
        raise AssertionError(f"no {address} feedback matching; got {self.feedback}")


def test_pads_trigger_live_takes_played_on_the_daemon(recipe_daemon: RecipeDaemon, tmp_path) -> None:
    pads = tmp_path / "pads.toml"
    pads.write_text('[[pad]]\nprompt = "tight funk drums"\n\n[[pad]]\nprompt = "deep bass"\nseed = 99\n')
    controller = Controller()
    process = subprocess.Popen(
        [sys.executable, "-m", "clients.examples.live_pads", "--pads", str(pads), "--listen", "0", "--local",
         "--endpoint", recipe_daemon.thread.zmq, "--feedback", f"127.0.0.1:{controller.port}",
         "--min-duration", "1", "--max-duration", "6", "--max-jobs", "3", "--timeout", "30"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        first = process.stdout.readline()
        assert "listening" in first, first + process.stderr.read()
        controller.target = ("127.0.0.1", int(first.split("port ")[1].split(",")[0]))
        controller.send("/1/fader1", 0.0)   # 1 s takes
        controller.send("/1/fader2", 0.25)  # temperature 0.75
        controller.send("/1/fader3", 0.5)   # gain 0.5
        controller.send("/1/push1", 1.0)
        controller.send("/1/push1", 0.0)    # the release does nothing
        controller.wait_for("/1/label1", lambda args: args == ["done"])
        controller.wait_for("/1/led1", lambda args: args == [1.0])
        # A long take on pad 2, retriggered at once: the first is cancelled, the second plays.
        controller.send("/1/fader1", 1.0)
        controller.send("/1/push2", 1.0)
        controller.send("/1/push2", 1.0)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    lines = [line for line in out.splitlines() if line.startswith("pad ")]
    assert len(lines) == 3, out
    assert lines[0].startswith("pad 1:") and "done frames=32000" in lines[0]
    pad2 = sorted(lines[1:])
    assert any("cancelled" in line or "error cancelled" in line for line in pad2), pad2
    assert any("done frames=192000 seed=99" in line for line in pad2), pad2

    # What the daemon received: self-contained live requests with the surface's settings.
    jobs = {line.split("job=")[1].split()[0]: line for line in lines}
    done_jobs = [job for job, line in jobs.items() if "done" in line]
    for job in done_jobs:
        request = recipe_daemon.log.requests[job]
        assert isinstance(request, Generate)
        assert request.play is True and request.priority == LIVE_PRIORITY
        assert request.temperature == 0.75 and request.gain == 0.5
    requests = {recipe_daemon.log.requests[job].prompt: recipe_daemon.log.requests[job] for job in done_jobs}
    assert requests["tight funk drums"].duration_s == 1.0
    assert requests["deep bass"].duration_s == 6.0 and requests["deep bass"].seed == 99
