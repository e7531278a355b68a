"""Every refusal reaches a listener (issue 18), and ZeroMQ's own transport limits.

A sender that cannot listen on the port it sent from (liblo's oscsend, Max's [udpsend]) hears
its refusals at an OSC listener it subscribed on the same machine; the PUB monitor hears them
too; a flood of bad requests is not multiplied onto the listeners. ZeroMQ caps its connections
(`too_many_peers`) and each peer's request rate (`rate_limited`).
"""

from __future__ import annotations

import shutil
import socket
import time
from pathlib import Path

import pytest
import zmq
from daemon_harness import OscDump, OscPeer, oscsend, start_fake_daemon, wait_for
from pythonosc.osc_message_builder import OscMessageBuilder

from daemon.server import router as router_module
from protocol import wire
from protocol.messages import Error, Event, GetStatus, Status

liblo = pytest.mark.skipif(shutil.which("oscsend") is None or shutil.which("oscdump") is None,
                           reason="liblo-tools (oscsend, oscdump) not installed")


def _subscribed_monitor(context: zmq.Context, pub: str) -> zmq.Socket:
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"error")
    sub.setsockopt(zmq.RCVTIMEO, 5000)
    sub.connect(pub)
    return sub


def _monitor_errors(sub: zmq.Socket, count: int) -> list[Error]:
    found: list[Error] = []
    while len(found) < count:
        frames = sub.recv_multipart()
        event = wire.decode_event(frames[1:])
        assert isinstance(event, Error)
        found.append(event)
    return found


@liblo
def test_oscsend_refusals_reach_an_oscdump_subscriber_and_the_monitor(tmp_path: Path) -> None:
    context = zmq.Context()
    with start_fake_daemon(tmp_path / "out") as daemon, OscDump() as dump:
        sub = _subscribed_monitor(context, daemon.pub)
        try:
            url = f"osc.udp://127.0.0.1:{daemon.osc_port}"
            oscsend("/riffd/subscribe", "i", dump.port, url=url)
            time.sleep(0.3)  # PUB/SUB joins asynchronously
            # As a new user would: a number where the prompt goes, a file outside the allowed folders,
            # an address the daemon does not serve. Each oscsend's own port is closed by the time the
            # answer comes: only the subscriber on its machine can hear it.
            oscsend("/riffd/generate", "i", 42, url=url)
            oscsend("/riffd/continue", "sf", "/etc/passwd", 2.0, url=url)
            oscsend("/riffd/generat", "s", "typo", url=url)
            wait_for(lambda: len([m for m in dump.messages() if m.address == "/riffd/error"]) >= 3, timeout_s=10)
            errors = [m for m in dump.messages() if m.address == "/riffd/error"]
            codes = [m.args[1] for m in errors]
            assert codes == ["invalid_argument", "path_not_allowed", "bad_message"], errors
            assert "/etc/passwd" in errors[1].args[2]
            monitored = _monitor_errors(sub, 3)
            assert [e.code for e in monitored] == codes
            assert not any(m.address == "/riffd/accepted" for m in dump.messages())  # nothing became a job
        finally:
            sub.close(0)
            context.term()


def test_a_flood_of_bad_requests_is_answered_to_its_sender_but_not_multiplied(tmp_path: Path) -> None:
    bad = OscMessageBuilder("/riffd/generate")
    bad.add_arg(42)
    packet = bad.build().dgram
    with start_fake_daemon(tmp_path / "out", osc_rate_limit=0) as daemon:
        listener = OscPeer(daemon.osc_port)
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sender.bind(("127.0.0.1", 0))
        sender.settimeout(5)
        try:
            listener.send("/riffd/subscribe")
            assert listener.receive()[0] == "/riffd/ok"
            flood = 400
            started = time.monotonic()
            for _ in range(flood // 50):  # in bursts of 50, so no socket buffer overflows and drops some
                for _ in range(50):
                    sender.sendto(packet, ("127.0.0.1", daemon.osc_port))
                for _ in range(50):
                    sender.recv(65536)  # every request answered to its sender
            elapsed_s = time.monotonic() - started
            time.sleep(0.3)
            relayed = 0
            listener.sock.settimeout(0.2)
            try:
                while True:
                    listener.sock.recv(65536)
                    relayed += 1
            except TimeoutError:
                pass
            # The sender got every answer; its listener at most the burst plus the rate over the time taken.
            allowed = router_module.RELAY_BURST + router_module.RELAY_ERRORS_PER_S * (elapsed_s + 0.5)
            assert 1 <= relayed <= allowed, (relayed, allowed)
            assert daemon.daemon._router.relays_dropped >= flood - allowed
        finally:
            sender.close()
            listener.sock.close()


def _ask_status(sock: zmq.Socket, request_id: str) -> None:
    sock.send_multipart(wire.encode(GetStatus(id=request_id)))


def _answer(sock: zmq.Socket) -> Event:
    return wire.decode_event(sock.recv_multipart())


def test_zmq_peers_over_the_cap_are_refused_until_a_slot_frees(tmp_path: Path) -> None:
    context = zmq.Context()
    with start_fake_daemon(tmp_path / "out", zmq_max_peers=2) as daemon:
        peers = []
        try:
            for _ in range(3):
                peer = context.socket(zmq.DEALER)
                peer.setsockopt(zmq.RCVTIMEO, 5000)
                peer.setsockopt(zmq.LINGER, 0)
                peer.connect(daemon.zmq)
                peers.append(peer)
                time.sleep(0.2)  # connect in order, so the third is the one over the cap
            first, second, third = (_ask_status(p, f"s{i}") or _answer(p) for i, p in enumerate(peers))
            assert isinstance(first, Status) and isinstance(second, Status)
            assert isinstance(third, Error) and third.code == "too_many_peers" and third.re == "s2", third
            peers.pop(0).close()
            wait_for(lambda: daemon.daemon._zmq._peers.waiting == 0, timeout_s=5)
            _ask_status(peers[-1], "again")
            assert isinstance(_answer(peers[-1]), Status)  # moved up into the freed slot
        finally:
            for peer in peers:
                peer.close(0)
            context.term()


def test_zmq_requests_over_a_peers_rate_are_answered_rate_limited(tmp_path: Path) -> None:
    context = zmq.Context()
    with start_fake_daemon(tmp_path / "out", zmq_rate_limit=5) as daemon:
        greedy, calm = context.socket(zmq.DEALER), context.socket(zmq.DEALER)
        try:
            for peer in (greedy, calm):
                peer.setsockopt(zmq.RCVTIMEO, 5000)
                peer.connect(daemon.zmq)
            for index in range(20):
                _ask_status(greedy, f"g{index}")
            answers = [_answer(greedy) for _ in range(20)]
            limited = [a for a in answers if isinstance(a, Error)]
            assert all(a.code == "rate_limited" for a in limited)
            assert 10 <= len(limited) <= 15, [type(a).__name__ for a in answers]  # burst 5, plus 5/s
            assert {a.re for a in answers} == {f"g{index}" for index in range(20)}  # each answered once
            _ask_status(calm, "calm")
            assert isinstance(_answer(calm), Status)  # another peer is not affected
            time.sleep(0.5)
            _ask_status(greedy, "later")
            assert isinstance(_answer(greedy), Status)  # the bucket refills
        finally:
            greedy.close(0)
            calm.close(0)
            context.term()
