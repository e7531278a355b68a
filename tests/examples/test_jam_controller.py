"""The jam controller recipe, driven like a TouchOSC controller: crossfader, temperature, save and recall."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from recipe_harness import ROOT, RecipeDaemon
from test_live_pads import Controller

from protocol.messages import JamStart


def _read_until(process: subprocess.Popen, fragment: str, seen: list[str], timeout_s: float = 60.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line.rstrip())
        if fragment in line:
            return line
    raise AssertionError(f"no {fragment!r} in {seen}")


def _start_controller(recipe_daemon: RecipeDaemon, controller: Controller, *args: str) -> subprocess.Popen:
    """jam_controller as its own process, listening on a free port, its feedback to `controller`."""
    return subprocess.Popen(
        [sys.executable, "-m", "clients.examples.jam_controller", *args, "--listen", "0", "--local", "--no-play",
         "--endpoint", recipe_daemon.thread.zmq, "--feedback", f"127.0.0.1:{controller.port}", "--timeout", "30"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)


def _connect(process: subprocess.Popen, controller: Controller, seen: list[str]) -> str:
    """Point `controller` at the port the program listens on; the id of the jam it started."""
    first = _read_until(process, "listening", seen)
    controller.target = ("127.0.0.1", int(first.split("port ")[1].split(";")[0]))
    return first.rsplit("jam ", 1)[1].strip()


def test_a_jam_steered_saved_and_recalled_from_a_controller(recipe_daemon: RecipeDaemon) -> None:
    controller = Controller()
    process = _start_controller(recipe_daemon, controller, "--a", "dub", "--b", "tabla", "--seed", "5")
    seen: list[str] = []
    try:
        jam = _connect(process, controller, seen)
        controller.wait_for("/1/offset", lambda args: args[0] > 0.2)
        controller.send("/1/fader1", 0.3)  # dub 0.7, tabla 0.3
        _read_until(process, "applied blend 0.30", seen)
        controller.send("/1/fader2", 0.5)  # temperature 1.1
        _read_until(process, "applied temperature 1.10", seen)
        controller.send("/1/save1", 1.0)
        saved = _read_until(process, "saved slot 1", seen)
        controller.send("/1/recall1", 1.0)
        recalled = _read_until(process, "recalled slot 1", seen)
        controller.wait_for("/1/label", lambda args: args == ["recalled 1"])
        controller.send("/1/stop", 1.0)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert "jams/slot-1.riffdjam" in saved
    resumed = recalled.split("as jam ")[1].strip()
    lines = seen + out.splitlines()
    assert any(line.startswith(f"jam {jam}: done") for line in lines), lines
    assert any(line.startswith(f"jam {resumed}: done") for line in lines), lines
    # What the daemon received: the jam, then a resume of slot 1.
    assert recipe_daemon.log.requests[jam] == JamStart("dub", seed=5, play=False, job=jam,
                                                       id=recipe_daemon.log.requests[jam].id)
    assert recipe_daemon.log.requests[resumed].resume == "slot-1"


def test_recalling_an_empty_slot_keeps_the_jam_and_says_so(recipe_daemon: RecipeDaemon) -> None:
    """QA: /1/recall7 with no slot 7 stopped the jam, then showed "recalled 7" for the refused resume;
    /1/stop then raised 'no running jam' in a task and the program never quit."""
    controller = Controller()
    process = _start_controller(recipe_daemon, controller, "--a", "dub", "--seed", "6")
    seen: list[str] = []
    try:
        jam = _connect(process, controller, seen)
        controller.wait_for("/1/offset", lambda args: args[0] > 0.2)
        controller.send("/1/recall7", 1.0)
        # The label first: it has a timeout, while a line that never comes would block the read.
        controller.wait_for("/1/label", lambda args: args == ["recall 7 failed"])
        failed = _read_until(process, "recall 7 failed", seen)
        # The jam plays on: its audio keeps coming, and it is still the one the faders steer.
        heard = controller.wait_for("/1/offset", lambda args: True)[0]
        controller.wait_for("/1/offset", lambda args: args[0] > heard + 0.3)
        controller.send("/1/fader2", 0.5)
        _read_until(process, "applied temperature 1.10", seen)
        controller.send("/1/stop", 1.0)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert "no snapshot 'slot-7'" in failed and "[not_found]" in failed
    assert "Task exception" not in err and "Traceback" not in err, err
    lines = seen + out.splitlines()
    assert not any("recalled 7" in line for line in lines), lines
    assert any(line.startswith(f"jam {jam}: done") for line in lines), lines
