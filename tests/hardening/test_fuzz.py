"""Fuzzing both decoders and the request validation (beyond tests/protocol's random bytes):
seeded mutation fuzzing of every message type, property-based headers and field values, and
a live daemon fed garbage on both transports. tests/fuzz/long_run.py runs the mutation fuzzer
for as long as you like."""

from __future__ import annotations

import json
import logging
import math
import random
import time
import tracemalloc

import numpy as np
import pytest
import zmq
from daemon_harness import DaemonThread, OscPeer, start_fake_daemon
from fuzz.engine import Fuzzer, mutate_bytes, mutate_header
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clients import Client
from daemon.entry import quiet_python_osc
from protocol import osc, wire
from protocol.audio_ref import InlineAudio
from protocol.errors import BadAudio, RiffdError
from protocol.messages import REQUESTS, Cancel, GetStatus, ListModels, Request, UnloadModel
from protocol.schema import FieldSpec, fields_of

MUTATION_CASES_PER_TARGET = 4000  # x 5 targets


@pytest.fixture
def quiet_osc():
    """python-osc warns once per unknown type tag; the fuzzer makes thousands."""
    log_filter = quiet_python_osc(logging.getLogger())
    yield
    logging.getLogger().removeFilter(log_filter)


def test_mutation_fuzzing_of_every_decoder(quiet_osc) -> None:
    report = Fuzzer(seed=20261122).run(MUTATION_CASES_PER_TARGET)
    assert report.total == 5 * MUTATION_CASES_PER_TARGET
    assert not report.failures, report.failures[:5]
    # Not everything was refused: mutations also reach deep into validation with valid messages.
    for target, cases in report.cases.items():
        assert 0 < report.refused.get(target, 0) < cases, (target, report.refused)
    assert report.slowest_case_s < 1.0, f"a case took {report.slowest_case_s:.2f} s"


def test_decoding_garbage_takes_bounded_memory(quiet_osc) -> None:
    fuzzer = Fuzzer(seed=7)
    tracemalloc.start()
    try:
        fuzzer.run(400)
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The biggest legitimate allocation is a header (64 KiB) or an OSC packet (16 KiB) and the
    # corpus' small PCM frames; a decoder trusting a claimed size would blow far past this.
    assert peak_bytes < 16 * 1024 * 1024, f"peak {peak_bytes / 2**20:.1f} MiB"


def test_claimed_sizes_are_never_allocated_before_they_are_checked() -> None:
    header = {"v": 1, "type": "continue", "duration_s": 1.0,
              "audio": {"buffer": 0, "sample_rate": 32000, "channels": 8, "frames": 2**40, "dtype": "float32"}}
    tracemalloc.start()
    try:
        with pytest.raises(RiffdError):
            wire.decode_request([json.dumps(header).encode(), b"\x00" * 64])
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak_bytes < 1024 * 1024
    with pytest.raises(RiffdError):  # an OSC TCP frame claiming 2 GiB is refused at its length
        osc.TcpDeframer().feed(b"\x7f\xff\xff\xff" + b"\x00" * 16)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
_FIELD_NAMES = sorted({spec.name for cls in REQUESTS.values() for spec in fields_of(cls)})


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(REQUESTS)) | st.text(max_size=10),
       st.dictionaries(st.sampled_from(_FIELD_NAMES) | st.text(max_size=6), _JSON, max_size=8),
       st.sampled_from([1, 1, 1, 0, 2, "1", None]))
def test_json_headers_from_the_schema_decode_to_valid_requests_or_riffd_errors(kind, fields, version) -> None:
    frame = json.dumps({**fields, "v": version, "type": kind}).encode()
    try:
        request = wire.decode_request([frame])
    except RiffdError:
        return
    # What the decoder accepts is valid, and survives a round trip through both codecs.
    request.validate()
    assert wire.decode_request(wire.encode(request)) == request
    try:
        packet = osc.encode(request)
    except ValueError:
        return  # some requests have no OSC form for every field combination
    [(address, args)] = osc.parse_packet(packet)
    assert osc.decode_request(address, args) == request


def _value_for(spec: FieldSpec) -> st.SearchStrategy:
    """Values near and past the edges of a field's kind (and sometimes of another kind)."""
    near = {
        "str": st.text(max_size=40) | st.sampled_from(["", "\x00", "x" * 3000, "../x", "job-1"]),
        "int": st.integers(-(2**64), 2**64) | st.sampled_from([0, -1, 1, 65535, 65536, 2**31, 2**63]),
        "float": st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.0, -0.0, 1e-9, 1e9, 300.0]),
        "bool": st.booleans() | st.sampled_from([0, 1, 2]),
        "list[str]": st.lists(st.text(max_size=8), max_size=4),
        "list[float]": st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=10),
        "audio": st.text(max_size=40) | st.sampled_from(["", "/tmp/a.wav", "relative.wav"]),
        "int|str": st.integers(-(2**33), 2**33)
        | st.sampled_from([16, 24, 32, 24.0, "float", "FLOAT", "32", "", "\x00"]),
    }[spec.kind]
    return near | st.none() | _JSON


@st.composite
def _request_fields(draw) -> tuple[type[Request], dict]:
    cls = draw(st.sampled_from(list(REQUESTS.values())))
    specs = fields_of(cls)
    chosen = draw(st.lists(st.sampled_from(specs), max_size=len(specs), unique_by=lambda s: s.name))
    return cls, {spec.name: draw(_value_for(spec)) for spec in chosen}


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_request_fields(), st.booleans())
def test_request_validation_accepts_only_valid_values(drawn, lenient: bool) -> None:
    cls, fields = drawn
    try:
        request = cls.from_fields(fields, lenient=lenient)
    except RiffdError:
        return
    request.validate()
    for name, value in request.to_fields().items():
        if isinstance(value, float):
            assert math.isfinite(value), (name, value)
        if isinstance(value, str):
            assert "\x00" not in value or name in ("prompt", "artist", "genres", "lyrics"), (name, value)
    assert wire.decode_request(wire.encode(request)) == request


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 3), st.integers(0, 12), st.integers(0, 40),
       st.sampled_from([0, 1, 999, 1000, 32000, 384000, 384001, 2**40]),
       st.sampled_from([None, math.nan, math.inf, -math.inf, 2.0]))
def test_inline_audio_is_valid_or_bad_audio(ndim: int, channels: int, frames: int, rate: int, poison) -> None:
    shape = {0: (), 1: (frames,), 2: (channels, frames), 3: (1, channels, frames)}[ndim]
    samples = np.zeros(shape, np.float32)
    if poison is not None and samples.size:
        samples.flat[samples.size // 2] = poison
    try:
        audio = InlineAudio(samples, rate)
    except BadAudio:
        return
    assert audio.samples.ndim == 2 and audio.frames > 0 and np.isfinite(audio.samples).all()
    assert 1 <= audio.channels <= 8 and 1000 <= audio.sample_rate <= 384000


def _replies_to_sender(packet: bytes) -> int:
    try:
        messages = osc.parse_packet(packet)
    except RiffdError:
        return 1
    count = 0
    for address, args in messages:
        try:
            count += osc.decode_request(address, args).reply_port is None
        except RiffdError:
            count += 1
    return count


# --------------------------------------------------------------------------------------------
# A live daemon fed garbage: every message is answered where a reply address is known, and the
# daemon serves the next request.


def test_a_live_daemon_answers_every_garbage_message_and_serves_on(tmp_path, quiet_osc) -> None:
    rng = random.Random(3)
    controls = [wire.encode(m) for m in (GetStatus(id="s"), ListModels(id="m"), Cancel(job="nope", id="c"),
                                         UnloadModel(model="nope", id="u"))]
    pool = [frames[0] for frames in controls]
    daemon: DaemonThread = start_fake_daemon(tmp_path / "out")
    context = zmq.Context()
    sock = context.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(daemon.zmq)
    peer = OscPeer(daemon.osc_port)
    try:
        sent = 300
        for n in range(sent):
            frames = list(rng.choice(controls))
            frames = mutate_header(frames, rng) if n % 2 else [mutate_bytes(frames[0], rng, pool)]
            if not frames[0]:
                frames[0] = b"\x00"
            sock.send_multipart(frames)
        # Control requests and garbage are each answered by exactly one event.
        answered = 0
        deadline = time.monotonic() + 30
        while answered < sent and time.monotonic() < deadline:
            if sock.poll(1000):
                wire.decode_event(sock.recv_multipart())
                answered += 1
        assert answered == sent
        assert not sock.poll(300), "more replies than messages"
        # OSC over UDP: each message of a datagram is answered once, and so is a datagram that
        # does not parse (except where a request itself names another reply port).
        packets = [mutate_bytes(osc.encode(GetStatus()), rng, [osc.encode(ListModels())]) for _ in range(200)]
        packets = [packet for packet in packets if packet]
        expected = sum(_replies_to_sender(packet) for packet in packets)
        for packet in packets:
            peer.send_raw(packet)
        answered = 0
        peer.sock.settimeout(1.0)
        try:
            while True:
                peer.sock.recv(65536)
                answered += 1
        except TimeoutError:
            pass
        assert answered == expected
        with Client(daemon.zmq, timeout_s=10) as client:
            assert client.status().protocol == 1
    finally:
        peer.close()
        sock.close()
        context.term()
        daemon.stop()
