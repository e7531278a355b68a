"""Guards against slow, noisy or forgetful peers: OSC TCP backlog, log flooding, chunk files piling up."""

from __future__ import annotations

import logging
import os
import socket
import time
from pathlib import Path

import pytest
from daemon_harness import DaemonThread, OscPeer, fake_loader, make_config, start_fake_daemon, wait_for
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder

import daemon.server.osc_endpoint as osc_endpoint
from clients import Client
from daemon.entry import quiet_python_osc
from daemon.sinks.retention import sweep_chunks
from protocol.messages import Done
from protocol.osc import frame_tcp


def test_an_osc_tcp_peer_that_stops_reading_is_dropped_past_its_backlog(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    # The same guard as in production, with a 64 KiB backlog so the test needs less traffic.
    monkeypatch.setattr(osc_endpoint, "MAX_TCP_BACKLOG_BYTES", 64 * 1024)
    status = frame_tcp(OscMessageBuilder("/riffd/status").build().dgram)
    with start_fake_daemon(tmp_path / "out", osc_rate_limit=0) as daemon:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window, and we never read
        sock.connect(("127.0.0.1", daemon.osc_port))
        sock.settimeout(20)
        try:
            deadline = time.monotonic() + 20
            while "is not reading" not in caplog.text:
                assert time.monotonic() < deadline, "the daemon kept buffering for a peer that does not read"
                try:
                    sock.sendall(status * 2000)  # each request answered by a status event of ~250 bytes
                except (BrokenPipeError, ConnectionResetError):
                    break
            wait_for(lambda: "is not reading" in caplog.text, timeout_s=10)
        finally:
            sock.close()
        # Everyone else is still served.
        with Client(daemon.zmq, timeout_s=10) as client:
            assert isinstance(list(client.generate("x", duration_s=0.5))[-1], Done)


def test_osc_tcp_connections_are_capped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(osc_endpoint, "MAX_TCP_CONNECTIONS", 8)
    status = frame_tcp(OscMessageBuilder("/riffd/status").build().dgram)

    def answered(sock: socket.socket) -> bool:
        try:
            sock.sendall(status)
            return len(sock.recv(65536)) > 0
        except OSError:
            return False

    with start_fake_daemon(tmp_path / "out") as daemon:
        held = [socket.create_connection(("127.0.0.1", daemon.osc_port), timeout=5) for _ in range(8)]
        try:
            assert all(answered(sock) for sock in held)
            with socket.create_connection(("127.0.0.1", daemon.osc_port), timeout=5) as extra:
                assert not answered(extra)  # the ninth is closed unanswered
            held.pop().close()
            wait_for(lambda: len(daemon.daemon._osc._connections) < 8, timeout_s=5)
            with socket.create_connection(("127.0.0.1", daemon.osc_port), timeout=5) as again:
                assert answered(again)  # a freed slot is usable
            assert all(answered(sock) for sock in held)
        finally:
            for sock in held:
                sock.close()


def _answers_until_quiet(peer: OscPeer, quiet_s: float = 0.5) -> int:
    """How many datagrams reach `peer` before none comes for `quiet_s`."""
    peer.sock.settimeout(quiet_s)
    answered = 0
    try:
        while True:
            peer.sock.recv(65536)
            answered += 1
    except TimeoutError:
        return answered


def test_an_osc_flood_from_one_host_is_cut_to_its_rate_limit(tmp_path: Path) -> None:
    status = OscMessageBuilder("/riffd/status").build().dgram
    with start_fake_daemon(tmp_path / "out", osc_rate_limit=100) as daemon:
        peer = OscPeer(daemon.osc_port)
        try:
            peer.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            started = time.monotonic()
            for n in range(2000):  # ~2000 packets a second: paced so the kernel buffer does not drop them
                peer.send_raw(status)
                if n % 2:
                    time.sleep(0.001)
            answered = _answers_until_quiet(peer)
            elapsed_s = time.monotonic() - started
            # A burst of 100, then 100 a second: far fewer than the 2000 sent.
            assert 100 <= answered <= 100 + 100 * elapsed_s + 10, (answered, elapsed_s)
            assert daemon.daemon._osc.dropped_over_rate >= 1000
            time.sleep(0.05)  # the bucket refills: the same host is served again
            peer.sock.settimeout(5)
            peer.send("/riffd/status")
            assert peer.receive()[0] == "/riffd/status"
        finally:
            peer.close()
        with Client(daemon.zmq, timeout_s=10) as client:  # ZeroMQ is not rate limited
            assert client.status().protocol == 1


def test_an_osc_bundle_counts_against_the_rate_limit_message_by_message(tmp_path: Path) -> None:
    bundle = OscBundleBuilder(IMMEDIATELY)
    for _ in range(300):
        bundle.add_content(OscMessageBuilder("/riffd/status").build())
    packet = bundle.build().dgram
    with start_fake_daemon(tmp_path / "out", osc_rate_limit=100) as daemon:
        peer = OscPeer(daemon.osc_port)
        try:
            peer.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            started = time.monotonic()
            peer.send_raw(packet)  # one packet, 300 requests
            answered = _answers_until_quiet(peer)
            elapsed_s = time.monotonic() - started
            assert 100 <= answered <= 100 + 100 * elapsed_s + 10, (answered, elapsed_s)
            assert daemon.daemon._osc.dropped_over_rate >= 300 - answered
        finally:
            peer.close()


def test_python_osc_unknown_type_tag_warnings_are_silenced(fake_daemon: DaemonThread,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    # An OSC message whose type tags python-osc does not know ('Z'), repeated per argument.
    packet = b"/riffd/status\x00\x00\x00,ZZZZZZZZ\x00\x00\x00"
    root = logging.getLogger()
    peer = OscPeer(fake_daemon.osc_port)
    try:
        peer.send_raw(packet)
        peer.receive()  # answered (an error or a status), so it was parsed
        assert "Unhandled parameter type" in caplog.text  # without the filter: one warning per argument
        caplog.clear()
        log_filter = quiet_python_osc(root)
        try:
            for _ in range(20):
                peer.send_raw(packet)
                peer.receive()
        finally:
            root.removeFilter(log_filter)
        assert "Unhandled parameter type" not in caplog.text
    finally:
        peer.close()


@pytest.fixture
def fake_daemon(tmp_path: Path):
    daemon = start_fake_daemon(tmp_path / "out")
    yield daemon
    daemon.stop()


def test_chunk_files_of_ended_jobs_expire_but_saved_files_stay(tmp_path: Path) -> None:
    out = tmp_path / "out"
    config = make_config(out, models=("fake/fast",), chunk_keep_s=0.3)
    with DaemonThread(config, loader=fake_loader).start() as daemon:
        peer = OscPeer(daemon.osc_port)
        try:
            peer.send("/riffd/generate", "x", 1.0, "job", "kept", "save", 1)
            messages = peer.receive_until("/riffd/done", "kept")
        finally:
            peer.close()
        chunk_paths = [Path(args[2]) for address, args in messages if address == "/riffd/chunk"]
        assert len(chunk_paths) == 4 and all(path.parent == out / "kept" for path in chunk_paths)
        wait_for(lambda: not (out / "kept").exists(), timeout_s=10)
        assert (out / "kept.wav").is_file()


def test_the_sweep_spares_running_jobs_links_and_other_files(tmp_path: Path) -> None:
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    for folder in (out / "done", out / "running", elsewhere):
        folder.mkdir(parents=True)
    for folder in (out / "done", out / "running", elsewhere):
        (folder / "chunk-00000.wav").write_bytes(b"x")
    (out / "done" / "notes.txt").write_text("mine")
    (out / "linked").symlink_to(elsewhere, target_is_directory=True)
    old = time.time() - 3600
    for path in out.rglob("chunk-*.wav"):
        os.utime(path, (old, old))
    os.utime(elsewhere / "chunk-00000.wav", (old, old))
    assert sweep_chunks(out, keep_s=60, active_jobs={"running"}) == 1
    assert not (out / "done" / "chunk-00000.wav").exists() and (out / "done" / "notes.txt").exists()
    assert (out / "running" / "chunk-00000.wav").exists()
    assert (elsewhere / "chunk-00000.wav").exists()  # not reached through the link
