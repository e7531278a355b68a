"""Access: loopback by default, --allow-remote to listen elsewhere, CurveZMQ keys, the OSC allow-list."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from daemon_harness import DaemonThread, OscPeer, fake_loader, make_config

from clients import Client
from clients.cli.main import main as riffd
from clients.curve import CurveClientKeys
from daemon.config import build_config
from protocol.errors import InvalidArgument
from protocol.messages import Done, Status
from protocol.osc import frame_tcp, parse_packet
from pythonosc.osc_message_builder import OscMessageBuilder

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::", "*"])
def test_listening_beyond_loopback_needs_the_flag_and_then_keys(host: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="--allow-remote"):
        build_config({"host": host})
    with pytest.raises(InvalidArgument, match="CurveZMQ needs"):
        build_config({"host": host, "allow_remote": True})
    config = build_config({"host": host, "allow_remote": True, "curve_secret_key": tmp_path / "s.key_secret",
                           "curve_clients_dir": tmp_path})
    assert config.curve_required
    assert not build_config({"host": "127.0.0.1"}).curve_required
    assert not build_config({"host": "::1"}).remote


def test_a_config_file_sets_access_and_paths_with_the_flags_spellings(tmp_path: Path) -> None:
    from daemon.config import read_config_file

    path = tmp_path / "riffd.toml"
    path.write_text(f'host = "0.0.0.0"\nallow-remote = true\ncurve-secret-key = "{tmp_path}/s.key_secret"\n'
                    f'curve-clients-dir = "{tmp_path}"\nosc-allow = ["192.168.1.0/24", "127.0.0.1"]\n'
                    f'audio-dir = ["{tmp_path}/takes"]\nmodel-dir = "{tmp_path}/models"\n'
                    'max-jobs-per-client = 3\nosc-rate-limit = 50\n')
    config = build_config(read_config_file(path))
    assert config.remote and config.curve_required and config.osc_allow == ("192.168.1.0/24", "127.0.0.1")
    assert config.audio_dirs == (tmp_path / "takes",) and config.model_dirs == (tmp_path / "models",)
    assert config.max_jobs_per_client == 3 and config.osc_rate_limit == 50
    with pytest.raises(InvalidArgument, match="osc_allow"):
        build_config({"osc_allow": ["not-an-address"]})


def test_the_daemon_refuses_to_start_on_another_interface_without_the_flag() -> None:
    result = subprocess.run([sys.executable, "-m", "daemon", "--host", "0.0.0.0", "--osc-port", "0", "--zmq-port", "0"],
                            cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "--allow-remote" in result.stderr


def test_riffd_keys_makes_a_pair_and_keeps_the_secret_private(tmp_path: Path, capsys) -> None:
    assert riffd(["keys", str(tmp_path), "--name", "laptop"]) == 0
    public, secret = tmp_path / "laptop.key", tmp_path / "laptop.key_secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert "curve" in public.read_text() and "secret-key" in secret.read_text()
    assert riffd(["keys", str(tmp_path), "--name", "laptop"]) == 2  # no silent overwrite
    assert "already exists" in capsys.readouterr().err


@pytest.fixture
def curve_daemon(tmp_path: Path):
    """A daemon on 127.0.0.1 with CurveZMQ forced on; alice's key is allowed, mallory's is not."""
    keys, allowed = tmp_path / "keys", tmp_path / "allowed"
    for name in ("server", "alice", "mallory"):
        assert riffd(["keys", str(keys), "--name", name]) == 0
    allowed.mkdir()
    shutil.copy(keys / "alice.key", allowed / "alice.key")
    config = make_config(tmp_path / "out", models=("fake/fast",), zmq_curve=True,
                         curve_secret_key=keys / "server.key_secret", curve_clients_dir=allowed)
    daemon = DaemonThread(config, loader=fake_loader).start()
    yield daemon, keys
    daemon.stop()


def test_curve_admits_an_allowed_key_and_refuses_others(curve_daemon) -> None:
    daemon, keys = curve_daemon
    alice = CurveClientKeys.load(keys / "alice.key_secret", keys / "server.key")
    with Client(daemon.zmq, timeout_s=10, curve=alice) as client:
        assert isinstance(client.status(), Status)
        assert isinstance(list(client.generate("x", duration_s=0.5))[-1], Done)
    # A key pair the daemon does not know, and no key at all: the handshake never completes,
    # so no request reaches the daemon and no reply comes back.
    mallory = CurveClientKeys.load(keys / "mallory.key_secret", keys / "server.key")
    for curve in (mallory, None):
        with Client(daemon.zmq, timeout_s=1.5, curve=curve) as client:
            with pytest.raises(TimeoutError):
                client.status()
    # Alice still gets in afterwards.
    with Client(daemon.zmq, timeout_s=10, curve=alice) as client:
        assert client.status().queued == 0


def test_the_event_monitor_needs_an_allowed_key_too(curve_daemon) -> None:
    import zmq

    daemon, keys = curve_daemon
    alice = CurveClientKeys.load(keys / "alice.key_secret", keys / "server.key")
    context = zmq.Context()
    monitors = {}
    try:
        for name, curve in (("alice", alice), ("nobody", None)):
            sub = context.socket(zmq.SUB)
            sub.setsockopt(zmq.LINGER, 0)
            sub.setsockopt(zmq.SUBSCRIBE, b"")
            if curve is not None:
                curve.apply(sub)
            sub.connect(daemon.pub)
            monitors[name] = sub
        with Client(daemon.zmq, timeout_s=10, curve=alice) as client:
            for _ in range(100):  # PUB/SUB joins asynchronously: ask until alice's monitor hears
                client.status()
                if monitors["alice"].poll(50):
                    break
            assert monitors["alice"].poll(0), "an allowed monitor heard nothing"
            list(client.generate("x", duration_s=0.5))
        assert not monitors["nobody"].poll(300), "a monitor without a key heard the daemon's events"
    finally:
        for sub in monitors.values():
            sub.close()
        context.term()


def test_the_cli_speaks_curve(curve_daemon, capsys) -> None:
    daemon, keys = curve_daemon
    flags = ["--endpoint", daemon.zmq, "--timeout", "10", "--curve-secret-key", str(keys / "alice.key_secret"),
             "--curve-server-key", str(keys / "server.key")]
    assert riffd(["status", *flags]) == 0
    assert "fake/fast" in capsys.readouterr().out


def _status_packet() -> bytes:
    return OscMessageBuilder("/riffd/status").build().dgram


def test_osc_answers_only_allow_listed_sources(tmp_path: Path) -> None:
    # 127.0.0.2 is allowed, 127.0.0.1 is not (both loopback, so the test needs no network).
    config = make_config(tmp_path / "out", models=("fake/fast",), osc_allow=("127.0.0.2/32",))
    with DaemonThread(config, loader=fake_loader).start() as daemon:
        stranger = OscPeer(daemon.osc_port)
        friend = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            friend.bind(("127.0.0.2", 0))
            friend.settimeout(10)
            stranger.sock.settimeout(1.0)
            stranger.send("/riffd/status")
            stranger.send_raw(b"garbage that would get an error reply")
            with pytest.raises(socket.timeout):
                stranger.sock.recv(65536)
            friend.sendto(_status_packet(), ("127.0.0.1", daemon.osc_port))
            [(address, _)] = parse_packet(friend.recv(65536))
            assert address == "/riffd/status"
            # Events may not be pointed at a host outside the list either.
            friend.sendto(OscMessageBuilder("/riffd/subscribe").build().dgram, ("127.0.0.1", daemon.osc_port))
            assert parse_packet(friend.recv(65536))[0][0] == "/riffd/ok"
            builder = OscMessageBuilder("/riffd/subscribe")
            builder.add_arg("127.0.0.9")
            builder.add_arg(9000)
            friend.sendto(builder.build().dgram, ("127.0.0.1", daemon.osc_port))
            [(address, args)] = parse_packet(friend.recv(65536))
            assert address == "/riffd/error" and "allow-list" in args[2]
            # TCP from a stranger: hung up on, unanswered.
            with socket.create_connection(("127.0.0.1", daemon.osc_port), timeout=5) as tcp:
                tcp.sendall(frame_tcp(_status_packet()))
                tcp.settimeout(5)
                try:
                    assert tcp.recv(65536) == b""
                except ConnectionResetError:
                    pass  # reset rather than closed: either way, nothing was answered
            assert daemon.daemon._osc.refused_packets >= 3
        finally:
            stranger.close()
            friend.close()


def test_sigterm_while_models_load_ends_the_daemon_at_once(tmp_path: Path) -> None:
    # A model that takes a minute to load: the daemon must not make a stop wait for it.
    script = (
        "import asyncio, logging, sys, time\n"
        "sys.path.insert(0, 'tests')\n"
        "from daemon_harness import make_config\n"
        "from daemon.server.app import serve\n"
        "logging.basicConfig(level='INFO')\n"
        "def slow(model_id, device):\n"
        "    time.sleep(60)\n"
        f"asyncio.run(serve(make_config(__import__('pathlib').Path({str(tmp_path)!r}), models=('slow',))"
        ", loader=slow))\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert process.stderr is not None
        for line in process.stderr:
            if "loading model slow" in line:
                break
        started = time.monotonic()
        process.terminate()
        assert process.wait(15) == 0
        assert time.monotonic() - started < 10
    finally:
        if process.poll() is None:
            process.kill()
