"""A port another program holds: one line naming it and the flag that moves it, exit 2, before any model loads."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from daemon_harness import FakeBackend, fake_loader, free_port, make_config

from daemon.server.app import Daemon
from protocol.errors import InvalidArgument

REPO = Path(__file__).resolve().parents[2]


def hold(kind: socket.SocketKind, port: int = 0) -> socket.socket:
    """A socket of this test's on 127.0.0.1:`port` (TCP ones listening), as another program would hold it."""
    held = socket.socket(socket.AF_INET, kind)
    held.bind(("127.0.0.1", port))
    if kind == socket.SOCK_STREAM:
        held.listen()
    return held


@pytest.mark.parametrize("kind, flag, name", [
    (socket.SOCK_DGRAM, "--osc-port", "OSC (UDP)"),
    (socket.SOCK_STREAM, "--osc-port", "OSC (TCP)"),
    (socket.SOCK_STREAM, "--zmq-port", "ZeroMQ requests"),
    (socket.SOCK_STREAM, "--pub-port", "ZeroMQ events"),
])
def test_a_taken_port_is_one_line_and_exit_2_before_the_models_load(
        tmp_path: Path, kind: socket.SocketKind, flag: str, name: str) -> None:
    ports = {"--osc-port": "0", "--zmq-port": "0", "--pub-port": "0"}
    with hold(kind) as held:
        port = held.getsockname()[1]
        ports[flag] = str(port)
        # A model that would take seconds to build and load, in a cache of its own: the port fails first.
        result = subprocess.run([sys.executable, "-m", "daemon", "--model", "debug/musicgen", "--device", "cpu",
                                 "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "out"), "--no-web",
                                 *[item for pair in ports.items() for item in pair]],
                                cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("riffd: error: ")]
    assert len(errors) == 1 and f"cannot listen for {name} on 127.0.0.1:{port}" in errors[0], result.stderr
    assert flag in errors[0], errors
    assert "Traceback" not in result.stderr and "cannot join thread" not in result.stderr
    assert "loading model" not in result.stderr and not (tmp_path / "cache").exists()


def test_the_cli_serve_command_says_the_same(tmp_path: Path) -> None:
    with hold(socket.SOCK_STREAM) as held:
        port = held.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "clients.cli.main", "serve", "--osc-port", "0", "--zmq-port",
                                 str(port), "--pub-port", "0", "--no-web", "--out", str(tmp_path / "out")],
                                cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert f"cannot listen for ZeroMQ requests on 127.0.0.1:{port}" in result.stderr and "--zmq-port" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_taken_port_fails_the_start_before_torch_is_imported(tmp_path: Path) -> None:
    """Importing torch takes seconds (~1.2 s on the 2-core Xeon): naming the device `--device auto`
    chose waits until the ports were tried, so the error comes in a moment."""
    script = ("import sys\nfrom clients.cli.main import main\ncode = main(sys.argv[1:])\n"
              "print('torch imported' if 'torch' in sys.modules else 'torch not imported')\nsys.exit(code)\n")
    with hold(socket.SOCK_DGRAM) as held:
        result = subprocess.run([sys.executable, "-c", script, "serve", "--model", "debug/musicgen", "--osc-port",
                                 str(held.getsockname()[1]), "--zmq-port", "0", "--pub-port", "0", "--no-web",
                                 "--out", str(tmp_path / "out")], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "cannot listen for OSC (UDP)" in result.stderr, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "torch not imported", result.stdout


@pytest.mark.parametrize("transport", ["osc", "zmq"])
def test_a_port_taken_while_the_models_load_is_the_same_error_and_stop_is_safe(tmp_path: Path, transport: str) -> None:
    """Another program binds the port after the check, during the load: the endpoint's own bind fails,
    reads like the check's, and stopping the half-started daemon raises nothing."""
    port = free_port()
    held: list[socket.socket] = []

    def load_then_lose_the_port(model_id: str, device: str) -> FakeBackend:
        held.append(hold(socket.SOCK_STREAM, port))
        return fake_loader(model_id, device)

    settings = {"osc_port": port} if transport == "osc" else {"zmq_port": port}
    daemon = Daemon(make_config(tmp_path / "out", models=("fake/fast",), web=False, **settings),
                    loader=load_then_lose_the_port)

    async def start_then_stop() -> None:
        with pytest.raises(InvalidArgument, match=f"cannot listen for .*{port}.*--{transport}-port"):
            await daemon.start()
        await daemon.stop()  # was "cannot join thread before it is started" (the scheduler's workers)

    try:
        asyncio.run(start_then_stop())
    finally:
        for sock in held:
            sock.close()
    assert held, "the port was never taken"
