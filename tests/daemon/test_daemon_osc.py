"""OSC end to end with liblo's own tools: oscsend sends, oscdump listens; UDP and TCP.

The daemon runs the real debug/musicgen preset; WAV files are checked for what they hold.
"""

from __future__ import annotations

import shutil
import socket
import struct

import numpy as np
import pytest
import soundfile as sf
from daemon_harness import DaemonThread, OscDump, OscPeer, oscsend, wait_for
from pythonosc.osc_message_builder import OscMessageBuilder

from protocol import osc

pytestmark = pytest.mark.skipif(shutil.which("oscsend") is None or shutil.which("oscdump") is None,
                                reason="liblo-tools (oscsend, oscdump) not installed")


def _job_lines(dump: OscDump, job: str) -> list:
    return [line for line in dump.messages() if line.args and line.args[0] == job]


def _check_wav_flow(dump: OscDump, job: str, duration_s: float) -> None:
    done = dump.wait_for(lambda line: line.address in ("/riffd/done", "/riffd/error") and line.args[0] == job)
    assert done is not None, dump.messages()
    lines = _job_lines(dump, job)
    kinds = [line.address.rsplit("/", 1)[1] for line in lines]
    assert kinds[0] == "accepted" and kinds[1] == "started" and kinds[-1] == "done", kinds
    assert "progress" in kinds and "chunk" in kinds
    # started JOB MODEL SAMPLE_RATE CHANNELS SEED; done JOB PATH FRAMES SAMPLE_RATE
    assert lines[0].types == "si" and lines[1].types == "ssiii" and lines[-1].types == "ssii"
    assert list(lines[-1].args[2:]) == [round(duration_s * 32000), 32000]
    chunks = [line for line in lines if line.address == "/riffd/chunk"]
    assert all(line.types == "sisiis" and line.args[5] == "final" for line in chunks)
    assert [line.args[1] for line in chunks] == list(range(len(chunks)))
    # Each chunk file was complete before its notice; together they are the saved file, each at
    # the offset its notice says, as long as its notice says.
    blocks, offset = [], 0
    for line in chunks:
        data, rate = sf.read(line.args[2], dtype="float32", always_2d=True)
        assert rate == 32000 and data.shape[0] > 0
        assert list(line.args[3:5]) == [offset, data.shape[0]]
        blocks.append(data)
        offset += data.shape[0]
    whole, rate = sf.read(done.args[1], dtype="float32", always_2d=True)
    assert rate == 32000 and whole.shape == (round(duration_s * 32000), 1)
    np.testing.assert_array_equal(np.concatenate(blocks), whole)
    assert np.abs(whole).max() > 0


def test_oscsend_request_is_answered_at_an_oscdump_listener_udp(debug_daemon: DaemonThread) -> None:
    url = f"osc.udp://127.0.0.1:{debug_daemon.osc_port}"
    with OscDump() as dump:
        oscsend("/riffd/subscribe", "i", dump.port, url=url)
        oscsend("/riffd/generate", "sfsiss", "warm pad", 1.5, "seed", 42, "job", "osc-udp", url=url)
        _check_wav_flow(dump, "osc-udp", 1.5)
        oscsend("/riffd/unsubscribe", "i", dump.port, url=url)


def test_oscsend_over_tcp_with_liblo_framing(debug_daemon: DaemonThread) -> None:
    with OscDump() as dump:
        oscsend("/riffd/subscribe", "i", dump.port, url=f"osc.udp://127.0.0.1:{debug_daemon.osc_port}")
        oscsend("/riffd/generate", "sfss", "over tcp", 1.0, "job", "osc-tcp",
                url=f"osc.tcp://127.0.0.1:{debug_daemon.osc_port}")
        _check_wav_flow(dump, "osc-tcp", 1.0)
        oscsend("/riffd/unsubscribe", "i", dump.port, url=f"osc.udp://127.0.0.1:{debug_daemon.osc_port}")


def test_tcp_replies_come_back_on_the_connection(debug_daemon: DaemonThread) -> None:
    builder = OscMessageBuilder("/riffd/generate")
    for arg in ("tcp reply", 0.5, "job", "tcp-conn", "seed", 7):
        builder.add_arg(arg)
    with socket.create_connection(("127.0.0.1", debug_daemon.osc_port), timeout=20) as conn:
        conn.sendall(osc.frame_tcp(builder.build().dgram))
        deframer, addresses = osc.TcpDeframer(), []
        while "/riffd/done" not in addresses:
            for packet in deframer.feed(conn.recv(65536)):
                [(address, args)] = osc.parse_packet(packet)
                assert args[0] == "tcp-conn"
                addresses.append(address)
    assert addresses[0] == "/riffd/accepted" and "/riffd/chunk" in addresses


def test_replies_go_to_the_request_source_and_pd_style_floats_are_accepted(debug_daemon: DaemonThread) -> None:
    peer = OscPeer(debug_daemon.osc_port)
    try:
        # Pure Data sends every number as a float: seed 3.0 must be read as the integer 3.
        peer.send("/riffd/generate", "pd", 0.5, "seed", 3.0, "job", "pd-floats", "priority", 1.0)
        messages = peer.receive_until("/riffd/done", "pd-floats")
        assert messages[0] == ("/riffd/accepted", ["pd-floats", 0])
        peer.send("/riffd/status")
        address, args = peer.receive()
        assert address == "/riffd/status" and args[:3] == [1, "cpu", "debug/musicgen"] and "debug/musicgen" in args[6:]
        assert args[5] == "float32"  # the engine the default model runs
    finally:
        peer.close()


@pytest.mark.parametrize(
    "send, code",
    [
        (lambda p: p.send_raw(b"\x00\x01garbage that is not OSC"), "bad_message"),
        (lambda p: p.send_raw(b"/riffd/generate\x00,sf\x00\x00\x00"), "bad_message"),  # truncated arguments
        (lambda p: p.send("/riffd/explode", 1), "bad_message"),
        (lambda p: p.send("/riffd/generate", "only a prompt"), "invalid_argument"),
        (lambda p: p.send("/riffd/generate", 5, 1.0), "invalid_argument"),
        (lambda p: p.send("/riffd/generate", "a", "long"), "invalid_argument"),
        (lambda p: p.send("/riffd/generate", "a", 1.0, "seed"), "invalid_argument"),
        (lambda p: p.send("/riffd/generate", "a", 1.0, "colour", "red"), "invalid_argument"),
        (lambda p: p.send("/riffd/generate", "a", 1.0, "seed", 1.5), "invalid_argument"),
        (lambda p: p.send("/riffd/generate", "a", -1.0), "invalid_argument"),
        (lambda p: p.send("/riffd/cancel", "nobody"), "not_found"),
        (lambda p: p.send("/riffd/cancel"), "invalid_argument"),
        (lambda p: p.send("/riffd/continue", "/tmp/riffd-no-such-file.wav", 1.0, "job", "nofile"), "bad_audio"),
        (lambda p: p.send("/riffd/generate", "a", 0.5, "model", "debug/none", "job", "badmodel"), "unknown_model"),
        (lambda p: p.send("/riffd/jukebox/sample", -1.0), "invalid_argument"),
        (lambda p: p.send_raw(b"x" * 20000), "message_too_large"),
    ],
)
def test_malformed_osc_gets_an_error_event_then_the_next_request_is_served(debug_daemon: DaemonThread, send,
                                                                          code: str) -> None:
    peer = OscPeer(debug_daemon.osc_port)
    try:
        send(peer)
        messages = peer.receive_until("/riffd/error")
        address, args = messages[-1]
        assert args[1] == code, args
        assert isinstance(args[2], str) and args[2]
        peer.send("/riffd/status")
        assert peer.receive()[0] == "/riffd/status"
    finally:
        peer.close()


def test_oversized_tcp_frame_is_refused_and_the_daemon_serves_on(debug_daemon: DaemonThread) -> None:
    with socket.create_connection(("127.0.0.1", debug_daemon.osc_port), timeout=10) as conn:
        conn.sendall(struct.pack(">i", 50_000_000) + b"\x00" * 1024)
        deframer = osc.TcpDeframer()
        packets = []
        while not packets:
            data = conn.recv(65536)
            assert data, "closed without an error event"
            packets = deframer.feed(data)
        [(address, args)] = osc.parse_packet(packets[0])
        assert address == "/riffd/error" and args[1] == "message_too_large"
        assert conn.recv(65536) == b""  # then hung up
    peer = OscPeer(debug_daemon.osc_port)
    try:
        peer.send("/riffd/status")
        assert peer.receive()[0] == "/riffd/status"
    finally:
        peer.close()


def test_a_tcp_connection_subscribes_itself_and_hears_other_peoples_jobs(debug_daemon: DaemonThread) -> None:
    with socket.create_connection(("127.0.0.1", debug_daemon.osc_port), timeout=20) as conn:
        conn.sendall(osc.frame_tcp(OscMessageBuilder("/riffd/subscribe").build().dgram))
        deframer = osc.TcpDeframer()

        def read() -> list[tuple[str, list]]:
            return [osc.parse_packet(p)[0] for p in deframer.feed(conn.recv(65536))]

        messages = read()
        assert messages[0][0] == "/riffd/ok" and messages[0][1][0] == "subscribe"
        oscsend("/riffd/generate", "sfss", "someone else", 0.5, "job", "heard", url=f"osc.udp://127.0.0.1:{debug_daemon.osc_port}")
        seen = []
        while ("/riffd/done", "heard") not in seen:
            seen += [(address, args[0]) for address, args in read()]
        assert seen[0] == ("/riffd/accepted", "heard") and ("/riffd/chunk", "heard") in seen


def test_reply_port_sends_a_jobs_events_to_a_listener_of_the_senders_choice(debug_daemon: DaemonThread) -> None:
    with OscDump() as dump:
        # oscsend's own port is gone once it exits; reply_port names where the patch listens.
        oscsend("/riffd/generate", "sfsssi", "to my port", 0.5, "job", "replyport", "reply_port", dump.port,
                url=f"osc.udp://127.0.0.1:{debug_daemon.osc_port}")
        done = dump.wait_for(lambda line: line.address == "/riffd/done" and line.args[0] == "replyport")
        assert done is not None
        kinds = [line.address for line in dump.messages() if line.args[0] == "replyport"]
        assert kinds[0] == "/riffd/accepted" and "/riffd/chunk" in kinds
    peer = OscPeer(debug_daemon.osc_port)
    try:
        peer.send("/riffd/generate", "x", 0.5, "reply_port", 0)
        assert peer.receive_until("/riffd/error")[-1][1][1] == "invalid_argument"
    finally:
        peer.close()


def test_requests_refused_at_decoding_answer_at_their_reply_port(debug_daemon: DaemonThread) -> None:
    url = f"osc.udp://127.0.0.1:{debug_daemon.osc_port}"
    with OscDump() as dump:
        # Each refused for a different field, the port given as an int or as Pd's float, as an option or
        # in a control request's positional form; oscsend has exited before any answer could reach it.
        sends = [
            ("/riffd/generate", "sfsssi", "x", 1.0, "seed", "abc", "reply_port", dump.port),
            ("/riffd/generate", "sfsisi", "x", 1.0, "bit_depth", 20, "reply_port", dump.port),
            ("/riffd/generate", "sfsssf", "x", 1.0, "format", "mp3", "reply_port", float(dump.port)),
            ("/riffd/generate", "sfsfsi", "x", 1.0, "out_sample_rate", 44100.5, "reply_port", dump.port),
            ("/riffd/continue", "sfsi", "", 1.0, "reply_port", dump.port),
            ("/riffd/generate", "sfsisi", "x", 1.0, "bars", 4, "reply_port", dump.port),
            ("/riffd/cancel", "si", "../x", dump.port),
        ]
        for count, (address, types, *args) in enumerate(sends, start=1):
            oscsend(address, types, *args, url=url)
            wait_for(lambda count=count: len(dump.messages("/riffd/error")) >= count)
        errors = dump.messages("/riffd/error")
        assert [line.args[1] for line in errors] == ["invalid_argument"] * len(sends)
        assert "seed must be an int" in errors[0].args[2] and "bit_depth" in errors[1].args[2]


def test_control_requests_answer_at_reply_port(debug_daemon: DaemonThread) -> None:
    url = f"osc.udp://127.0.0.1:{debug_daemon.osc_port}"
    with OscDump() as dump:
        oscsend("/riffd/status", "i", dump.port, url=url)
        status = dump.wait_for(lambda line: line.address == "/riffd/status")
        assert status is not None and status.types.startswith("issiis") and status.args[2] == "debug/musicgen"
        oscsend("/riffd/cancel", "si", "nobody", dump.port, url=url)
        error = dump.wait_for(lambda line: line.address == "/riffd/error")
        assert error is not None and error.args[:2] == ("nobody", "not_found")
        oscsend("/riffd/models", "i", dump.port, url=url)
        models = dump.wait_for(lambda line: line.address == "/riffd/models")
        assert models is not None and models.args == ("debug/musicgen", "debug/musicgen")


def test_long_error_texts_are_cut_to_fit_osc(debug_daemon: DaemonThread) -> None:
    peer = OscPeer(debug_daemon.osc_port)
    try:
        # The message names the 3600-character path; the OSC error carries its start.
        peer.send("/riffd/continue", "/tmp/" + "/".join(["abcdefgh"] * 400), 1.0, "job", "longpath")
        address, args = peer.receive_until("/riffd/error", "longpath")[-1]
        assert args[1] == "bad_audio" and len(args[2]) == 1000 and args[2].endswith("...")
    finally:
        peer.close()


def test_an_unwritable_output_is_an_error_event_and_the_daemon_serves_on(debug_daemon: DaemonThread) -> None:
    # A file where the job's chunk folder should be: writing the first chunk fails.
    (debug_daemon.config.out_dir / "blocked").write_text("not a folder")
    peer = OscPeer(debug_daemon.osc_port)
    try:
        peer.send("/riffd/generate", "x", 0.5, "job", "blocked")
        address, args = peer.receive_until("/riffd/error", "blocked")[-1]
        assert args[1] == "output_error" and "blocked" in args[2]
        peer.send("/riffd/generate", "x", 0.5, "job", "unblocked")
        assert peer.receive_until("/riffd/done", "unblocked")[-1][0] == "/riffd/done"
    finally:
        peer.close()
