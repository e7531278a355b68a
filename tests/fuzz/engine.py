"""Mutation fuzzing of riffd's decoders: valid messages of every type, mutated, fed to each decoder.

A decoder may return a message or raise a RiffdError; anything else (another exception, a case
that takes too long) is a failure, kept with the input that caused it. Used by
tests/hardening/test_fuzz.py (a quick seeded run) and tests/fuzz/long_run.py (as long as you like).

Mutations work at three levels, since byte flips alone rarely get past a JSON or OSC parser:
bytes (flips, interesting values, inserts, deletes, splices, truncation), JSON headers (a field
given a value of another type, removed, added, nested deep, numbers at the edges), and OSC
arguments (re-encoded with other types and counts).
"""

from __future__ import annotations

import json
import random
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pythonosc.osc_message_builder import OscMessageBuilder

from protocol import osc, wire
from protocol.audio_ref import InlineAudio
from protocol.errors import RiffdError
from protocol.messages import EVENTS, REQUESTS, Cancel, Chunk, Continue, Error, Generate, Status, Subscribe
from protocol.schema import Message, fields_of

_SAMPLE = {"str": "abc", "int": 3, "float": 1.5, "bool": True, "list[str]": ("m1", "m2"), "list[float]": (0.5, 2.0),
           "audio": "/tmp/a.wav"}
_INTERESTING_BYTES = (0x00, 0x01, 0x7F, 0x80, 0xFF, 0x22, 0x5C, 0x2C, 0x2F, 0x7B, 0x7D, 0x5B)
_INTERESTING_JSON: tuple[Any, ...] = (
    None, True, False, 0, -1, 1, 2**31, -(2**31) - 1, 2**63, 2**64, 1e308, -1e308, 1e-320, 0.5, "", "a" * 300,
    "\x00", "\ud7ff", "../../etc/passwd", "/tmp/a.wav", [], {}, [1, 2], {"buffer": 0}, "NaN", 65536, 65535,
)


def _instance(cls: type[Message]) -> Message | None:
    """A valid instance of `cls` from its required fields' kinds, or None if that is not valid."""
    values = {spec.name: _SAMPLE[spec.kind] for spec in fields_of(cls) if spec.required}
    try:
        message = cls(**values)
        message.validate()
    except (RiffdError, TypeError, ValueError):
        return None
    return message


def corpus_messages() -> tuple[list[Message], list[Message]]:
    """(requests, events): every type riffd speaks, plus richer hand-picked ones."""
    requests = [m for m in (_instance(cls) for cls in REQUESTS.values()) if m is not None]
    melody = InlineAudio(np.linspace(-1, 1, 64, dtype=np.float32).reshape(2, 32), 32000)
    requests += [
        Generate("warm pad", 2.0, seed=7, top_k=50, top_p=0.9, temperature=0.8, model="debug/musicgen", job="j-1",
                 priority=3, id="r1", format="flac", bit_depth=24, out_sample_rate=44100, save=True),
        Generate("x", 1.0, melody=melody, id="r2"),
        Continue("/tmp/in.wav", 1.0, prompt="more", id="r3"),
        Continue(melody, 1.0, id="r4"),
        Cancel(job="j-1", id="r5"),
        Subscribe(host="127.0.0.1", port=9000, id="r6"),
    ]
    events = [m for m in (_instance(cls) for cls in EVENTS.values()) if m is not None]
    events += [
        Chunk(job="j", index=2, offset_samples=64, sample_rate=32000, channels=2, frames=4,
              audio=np.zeros((2, 4), np.float32)),
        Error(job="j", code="queue_full", message="full", re="r1"),
        Status(protocol=1, device="cpu", default_model="m", queued=1, running=1, models=("a", "b"), jobs=("j",)),
    ]
    return requests, events


def _osc_packets(messages: Sequence[Message]) -> list[bytes]:
    packets = []
    for message in messages:
        try:
            packets.append(osc.encode(message))
        except ValueError:
            pass  # inline audio has no OSC form
    return packets


# --------------------------------------------------------------------------------------------
# Mutators


def mutate_bytes(data: bytes, rng: random.Random, pool: Sequence[bytes]) -> bytes:
    out = bytearray(data)
    for _ in range(rng.choice((1, 1, 1, 2, 4, 8))):
        choice = rng.randrange(9)
        position = rng.randrange(len(out) + 1)
        if choice == 0 and out:
            out[position % len(out)] ^= 1 << rng.randrange(8)
        elif choice == 1 and out:
            out[position % len(out)] = rng.choice(_INTERESTING_BYTES)
        elif choice == 2:
            out[position:position] = rng.randbytes(rng.randrange(1, 16))
        elif choice == 3 and out:
            del out[position:position + rng.randrange(1, 16)]
        elif choice == 4 and out:
            span = out[position:position + rng.randrange(1, 32)]
            out[position:position] = span * rng.randrange(1, 8)
        elif choice == 5:
            del out[position:]
        elif choice == 6:
            other = rng.choice(pool)
            cut = rng.randrange(len(other) + 1)
            out[position:] = other[cut:]
        elif choice == 7 and len(out) >= 4:
            # An OSC/TCP length or int32 argument rewritten to an edge value.
            at = rng.randrange(len(out) - 3) & ~3
            out[at:at + 4] = struct.pack(">i", rng.choice((0, -1, 2**31 - 1, -(2**31), 4, 16 * 1024 + 1)))
        else:
            out = bytearray(rng.randbytes(rng.randrange(0, 64)))
    return bytes(out)


def _random_json(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(8 if depth < 3 else 5)
    if kind == 0:
        return rng.choice(_INTERESTING_JSON)
    if kind == 1:
        return rng.randint(-(2**70), 2**70)
    if kind == 2:
        return rng.uniform(-1e6, 1e6)
    if kind == 3:
        return "".join(chr(rng.choice((rng.randrange(32, 127), rng.randrange(0, 0x2FFFF)))) for _ in range(rng.randrange(8)))
    if kind == 4:
        return rng.choice((True, False, None))
    if kind == 5:
        return [_random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    if kind == 6:
        return {str(rng.randrange(5)): _random_json(rng, depth + 1) for _ in range(rng.randrange(4))}
    return {"buffer": rng.randrange(-1, 3), "sample_rate": rng.choice((0, 32000, 10**9)),
            "channels": rng.choice((0, 1, 2, 10**6)), "frames": rng.choice((0, 4, 32, 2**40)),
            "dtype": rng.choice(("float32", "int16", 5))}


def mutate_header(frames: list[bytes], rng: random.Random) -> list[bytes]:
    """A JSON-level mutation of a ZeroMQ message's header (and sometimes its other frames)."""
    header = json.loads(frames[0])
    keys = list(header)
    nest = 0
    for _ in range(rng.choice((1, 1, 2, 3))):
        choice = rng.randrange(7)
        if choice == 0 and keys:
            header[rng.choice(keys)] = _random_json(rng)
        elif choice == 1 and keys:
            header.pop(rng.choice(keys), None)
        elif choice == 2:
            name = rng.choice([*keys, "id", "job", "model", "duration_s", "audio", "seed", "zzz", "v", "type"])
            header[name] = _random_json(rng)
        elif choice == 3:
            header["type"] = rng.choice([*REQUESTS, *EVENTS, "", "generate ", 5, None])
        elif choice == 4:
            header["v"] = rng.choice((0, 1, 2, "1", 1.0, None, True))
        elif choice == 5 and keys:
            nest = rng.choice((10, 100, 1000, 100000))  # spliced in as text: json.dumps would recurse
            header[rng.choice(keys)] = "__nest__"
        else:
            frames = [*frames[:1], *[rng.randbytes(rng.choice((0, 3, 8, 256))) for _ in range(rng.randrange(3))]]
    text = json.dumps(header, allow_nan=True)  # NaN and Infinity too: the decoder must refuse them
    if nest:
        text = text.replace('"__nest__"', "[" * nest + "]" * nest)
    return [text.encode(), *frames[1:]]


def mutate_osc_args(packet: bytes, rng: random.Random) -> bytes:
    """Re-encode an OSC message with its arguments' values and types scrambled."""
    [(address, args)] = osc.parse_packet(packet)
    args = list(args)
    for _ in range(rng.choice((1, 2, 3))):
        choice = rng.randrange(5)
        value = rng.choice((0, -1, 2**31 - 1, 1.5, float("nan"), float("inf"), "", "x", "job", "seed", "model",
                            "priority", "reply_port", "../x", True, False, None, b"\x00\xff", "a" * 200))
        if choice == 0 and args:
            args[rng.randrange(len(args))] = value
        elif choice == 1:
            args.insert(rng.randrange(len(args) + 1), value)
        elif choice == 2 and args:
            del args[rng.randrange(len(args))]
        elif choice == 3:
            address = rng.choice((*osc.REQUEST_ADDRESSES, *osc.EVENT_ADDRESSES, "/riffd", "/riffd/", "/", "/x"))
        else:
            args = args[::-1]
    builder = OscMessageBuilder(address)
    for arg in args:
        builder.add_arg(arg)
    return builder.build().dgram


# --------------------------------------------------------------------------------------------
# Targets: how each input reaches a decoder.


def _decode_osc(packet: bytes, decode: Callable[[str, list], Any]) -> None:
    for address, args in osc.parse_packet(packet):
        try:
            decode(address, args)
        except RiffdError:
            pass


def _decode_zmq_request(frames: list[bytes]) -> None:
    try:
        wire.decode_request(frames).validate()
    except RiffdError:
        wire.reply_ids(frames)  # what the endpoint does next with a refused message: must not raise
        raise


def _decode_tcp_stream(stream: bytes, rng: random.Random) -> None:
    deframer = osc.TcpDeframer()
    position = 0
    while position < len(stream):
        step = rng.randrange(1, 64)
        for packet in deframer.feed(stream[position:position + step]):
            try:
                _decode_osc(packet, osc.decode_request)
            except RiffdError:
                pass
        position += step


@dataclass
class FuzzReport:
    """What a run found: case counts, outcomes, the slowest case, failures with their inputs."""

    cases: dict[str, int] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)
    slowest_case_s: float = 0.0
    failures: list[tuple[str, str, object]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.cases.values())


class Fuzzer:
    """Seeded mutation fuzzing of every decoder; `run` may be called repeatedly."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = random.Random(seed)
        requests, events = corpus_messages()
        self.zmq_requests = [wire.encode(m) for m in requests]
        self.zmq_events = [wire.encode(m) for m in events]
        self.osc_requests = _osc_packets(requests)
        self.osc_events = _osc_packets(events)
        self.all_bytes = [frames[0] for frames in self.zmq_requests + self.zmq_events] + self.osc_requests + \
            self.osc_events

    def one_case(self, target: str) -> tuple[Callable[[], None], object]:
        """(run it, the input) for one fresh case of `target`."""
        rng = self.rng
        if target in ("zmq_request", "zmq_event"):
            corpus = self.zmq_requests if target == "zmq_request" else self.zmq_events
            frames = list(rng.choice(corpus))
            if rng.random() < 0.5:
                frames = mutate_header(frames, rng)
            else:
                frames = [mutate_bytes(frames[0], rng, self.all_bytes), *frames[1:]]
            decode = _decode_zmq_request if target == "zmq_request" else wire.decode_event
            return (lambda: decode(frames)), frames
        if target in ("osc_request", "osc_event"):
            corpus = self.osc_requests if target == "osc_request" else self.osc_events
            packet = rng.choice(corpus)
            packet = mutate_osc_args(packet, rng) if rng.random() < 0.4 else mutate_bytes(packet, rng, self.all_bytes)
            decode = osc.decode_request if target == "osc_request" else osc.decode_event
            return (lambda: _decode_osc(packet, decode)), packet
        if target == "osc_tcp":
            packets = [rng.choice(self.osc_requests) for _ in range(rng.randrange(1, 4))]
            stream = mutate_bytes(b"".join(osc.frame_tcp(p) for p in packets), rng, self.all_bytes)
            split = random.Random(rng.random())
            return (lambda: _decode_tcp_stream(stream, split)), stream
        raise ValueError(target)

    TARGETS = ("zmq_request", "zmq_event", "osc_request", "osc_event", "osc_tcp")

    def run(self, cases_per_target: int, report: FuzzReport | None = None, *,
            deadline_s: float | None = None) -> FuzzReport:
        report = report or FuzzReport()
        stop_at = None if deadline_s is None else time.monotonic() + deadline_s
        for target in self.TARGETS:
            for _ in range(cases_per_target):
                if stop_at is not None and time.monotonic() > stop_at:
                    return report
                case, data = self.one_case(target)
                started = time.perf_counter()
                try:
                    case()
                except RiffdError:
                    report.refused[target] = report.refused.get(target, 0) + 1
                except Exception as exc:  # noqa: BLE001 - what the fuzzer is looking for
                    report.failures.append((target, f"{type(exc).__name__}: {exc}"[:300], data))
                report.slowest_case_s = max(report.slowest_case_s, time.perf_counter() - started)
                report.cases[target] = report.cases.get(target, 0) + 1
        return report


__all__ = ["FuzzReport", "Fuzzer", "corpus_messages", "mutate_bytes", "mutate_header", "mutate_osc_args"]
