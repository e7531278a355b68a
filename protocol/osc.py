"""OSC codec derived from the schema: addresses and argument layouts of every message.

A message's address is `Message.osc_address()`; its arguments are one of its `OSC_FORMS`
(positional fields, in order), then, where `OSC_OPTIONS` allows, `key value` pairs for any
other field (`/riffd/generate ,sf PROMPT DURATION_S seed 42 model debug/musicgen`). A
`tuple[str, ...]` field last in a form takes every remaining argument; weighted pairs
(`OSC_PAIRS`) take them up to the first text that names an option. Over TCP each packet
is preceded by its length as a big-endian int32 (OSC 1.0 stream framing, as liblo sends it).
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Sequence
from typing import Any

from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket, ParseError

from protocol.errors import BadMessage, InvalidArgument, MessageTooLarge, RiffdError
from protocol.messages import EVENTS, REQUESTS, Event, Request, check_job_id
from protocol.schema import FieldSpec, Message, coerce, fields_of

#: Our outgoing OSC messages stay under this size (Max and Pd drop bigger UDP packets).
MAX_OSC_MESSAGE_BYTES = 8192
#: Incoming packets (a UDP datagram or a TCP frame) larger than this are refused.
MAX_OSC_PACKET_BYTES = 16 * 1024

REQUEST_ADDRESSES: dict[str, type[Request]] = {cls.osc_address(): cls for cls in REQUESTS.values()}
EVENT_ADDRESSES: dict[str, type[Event]] = {cls.osc_address(): cls for cls in EVENTS.values()}

_TAG_OF_KIND = {"str": "s", "int": "i", "float": "f", "list[str]": "s", "list[float]": "f", "audio": "s"}
_PLACEHOLDER_OF_KIND: dict[str, str | int | float] = {"str": "", "int": 0, "float": 0.0}


def encode(message: Message) -> bytes:
    """The OSC packet of a message; raises ValueError past MAX_OSC_MESSAGE_BYTES."""
    specs = {spec.name: spec for spec in fields_of(type(message))}
    form = _form_for(message)
    builder = OscMessageBuilder(type(message).osc_address())
    pairs = type(message).OSC_PAIRS
    for name in form:
        if pairs is not None and name == pairs[0]:
            _add_pairs(builder, type(message), getattr(message, pairs[0]), getattr(message, pairs[1]))
        else:
            _add(builder, specs[name], getattr(message, name))
    if type(message).OSC_OPTIONS:
        message_class: type = type(message)
        defaults = {f.name: f.default for f in dataclasses.fields(message_class)}
        for name, spec in specs.items():
            value = getattr(message, name)
            if name in form or (pairs is not None and name in pairs) or value is None or value == defaults.get(name):
                continue
            builder.add_arg(name, "s")
            _add(builder, spec, value)
    packet = builder.build().dgram
    if len(packet) > MAX_OSC_MESSAGE_BYTES:
        raise ValueError(f"{message.TYPE} OSC message is {len(packet)} bytes, over {MAX_OSC_MESSAGE_BYTES}")
    return packet


def _form_for(message: Message) -> tuple[str, ...]:
    """The first form that carries every field set (options carry the rest where allowed).

    An event's OSC form is a fixed subset of its fields by design (a chunk's file path stands
    for its samples); a request must not lose any.
    """
    cls = type(message)
    if not isinstance(message, Request):
        # An event's later forms are older, shorter layouts; one is used when a field of the newer
        # would need a 64-bit int (`h`), which Pd's [oscparse] refuses (a client's own large seed),
        # or when a number it adds is absent (a chunk's beat for a job not in time): OSC has no null.
        for form in cls.OSC_FORMS[:-1]:
            if not any(_is_int64(getattr(message, name)) or _absent_number(cls, name, getattr(message, name))
                       for name in form):
                return form
        return cls.OSC_FORMS[-1]
    if cls.OSC_OPTIONS:
        return cls.OSC_FORMS[0]
    given = {name for name, value in message.to_fields().items() if name not in ("id", "re")}
    for form in cls.OSC_FORMS:
        if given <= set(form) | ({cls.OSC_PAIRS[1]} if cls.OSC_PAIRS and cls.OSC_PAIRS[0] in form else set()):
            return form
    raise ValueError(f"{cls.TYPE}: OSC cannot carry {', '.join(sorted(given))} together")


def _absent_number(cls: type[Message], name: str, value: Any) -> bool:
    return value is None and any(spec.name == name and spec.kind in ("int", "float") for spec in fields_of(cls))


def _is_int64(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and not -(2**31) <= value < 2**31


def _add_pairs(builder: OscMessageBuilder, cls: type[Message], texts: Sequence[str], numbers: Sequence[float]) -> None:
    """`TEXT NUMBER TEXT NUMBER...`, or the texts alone when there are no numbers."""
    clash = set(texts) & option_keys(cls)
    if clash:
        raise ValueError(f"{cls.TYPE}: OSC cannot carry a text named like an option ({', '.join(sorted(clash))})")
    for index, text in enumerate(texts):
        builder.add_arg(text, "s")
        if numbers:
            builder.add_arg(float(numbers[index]), "f")


def _add(builder: OscMessageBuilder, spec: FieldSpec, value: Any) -> None:
    if spec.kind == "audio":
        if not isinstance(value, str):
            raise ValueError(f"{spec.name}: OSC carries audio as a file path only")
        builder.add_arg(value, "s")
    elif spec.kind == "list[str]":
        for item in value or ():
            builder.add_arg(item, "s")
    elif spec.kind == "bool":
        builder.add_arg(bool(value), "T" if value else "F")
    elif value is None:
        builder.add_arg(_PLACEHOLDER_OF_KIND[spec.kind], _TAG_OF_KIND[spec.kind])
    elif spec.kind == "int|str":
        builder.add_arg(value, "s" if isinstance(value, str) else "i")
    elif spec.kind == "int" and not -(2**31) <= value < 2**31:
        builder.add_arg(value, "h")
    else:
        builder.add_arg(value, _TAG_OF_KIND[spec.kind])


def parse_packet(data: bytes) -> list[tuple[str, list[Any]]]:
    """(address, arguments) of each message in a packet (bundles are flattened, in time order)."""
    if len(data) > MAX_OSC_PACKET_BYTES:
        raise MessageTooLarge(f"OSC packet is {len(data)} bytes, over the limit of {MAX_OSC_PACKET_BYTES}")
    try:
        packet = OscPacket(data)
    except (ParseError, ValueError, IndexError, TypeError, OverflowError, struct.error) as exc:
        # python-osc lets some malformed input escape as these (invalid UTF-8 in a string...).
        raise BadMessage(f"not an OSC packet: {exc}") from None
    return [(timed.message.address, list(timed.message.params)) for timed in packet.messages]


def decode_request(address: str, args: Sequence[Any]) -> Request:
    """The request at an OSC address with its arguments; raise a RiffdError if invalid."""
    cls = REQUEST_ADDRESSES.get(address)
    if cls is None:
        raise BadMessage(f"unknown OSC address {address!r} (known: {', '.join(sorted(REQUEST_ADDRESSES))})")
    message = cls.from_fields(_fields(cls, args), lenient=True)
    assert isinstance(message, Request)
    return message


def decode_event(address: str, args: Sequence[Any]) -> Event:
    """The event at an OSC address with its arguments (what a Python OSC listener needs).

    Fields OSC does not carry (a chunk's offset and format, say) read as 0 or "".
    """
    cls = EVENT_ADDRESSES.get(address)
    if cls is None:
        raise BadMessage(f"unknown OSC event address {address!r}")
    message = cls.from_fields(_fields(cls, args), lenient=True, fill_missing=True)
    assert isinstance(message, Event)
    return message


def job_hint(args: Sequence[Any], address: str = "") -> str:
    """Best effort job id in a request that failed to decode, for its error: the positional job or
    jam id of the request at `address` (`/riffd/jam/set JAM ...`, `/riffd/cancel JOB`), else a
    `job ID` among its options."""
    cls = REQUEST_ADDRESSES.get(address)
    if cls is not None and args and isinstance(args[0], str) and cls.OSC_FORMS[0][:1] in (("jam",), ("job",)):
        try:
            return check_job_id(args[0])
        except InvalidArgument:
            return ""  # an invalid id is what failed: not echoed back
    for key, value in zip(args, args[1:]):
        if key == "job" and isinstance(value, str):
            return value
    return ""


def reply_port_hint(address: str, args: Sequence[Any]) -> int | None:
    """Best effort `reply_port` of a request that failed to decode, so that its error goes where
    the sender listens: read as decode_request reads it (an option, or the positional one of a
    control request's form), typed as its lenient OSC decoding types it; None unless a valid port."""
    cls = REQUEST_ADDRESSES.get(address)
    if cls is None:
        return None
    try:
        value = _fields(cls, args).get("reply_port")
        spec = next(spec for spec in fields_of(cls) if spec.name == "reply_port")
        port = coerce(spec, value, where=cls.TYPE, lenient=True)
    except RiffdError:  # the arguments cannot be laid out, or the port is not an int
        return None
    return port if isinstance(port, int) and 1 <= port <= 65535 else None


def option_keys(cls: type[Message]) -> set[str]:
    """The names that may follow a message's positional form as `key value` options (none
    without `OSC_OPTIONS`); with weighted pairs, the first text among them ends the pairs."""
    if not cls.OSC_OPTIONS:
        return set()
    taken = set(cls.OSC_FORMS[0]) | set(cls.OSC_PAIRS or ())
    return {spec.name for spec in fields_of(cls) if spec.name not in taken}


def usage(cls: type[Message], *, first_only: bool = False) -> str:
    """How a message looks in OSC, e.g. `/riffd/generate ,sf PROMPT DURATION_S [key value]...`;
    `first_only`: the layout it is sent in (an event's later forms only read older daemons)."""
    specs = {spec.name: spec for spec in fields_of(cls)}
    pairs = cls.OSC_PAIRS
    forms = []
    for form in cls.OSC_FORMS[:1] if first_only else cls.OSC_FORMS:
        if pairs is not None and pairs[0] in form:
            # The interleaved tail is shown as the patches write it: ,s JAM [TEXT WEIGHT]...
            fixed = form[:form.index(pairs[0])]
            tags = "".join(_TAG_OF_KIND.get(specs[name].kind, "T") for name in fixed)
            names = " ".join(name.upper() for name in fixed)
            forms.append(f",{tags} {names} [{_singular(pairs[0]).upper()} {_singular(pairs[1]).upper()}]...")
            continue
        tags = "".join(_TAG_OF_KIND.get(specs[name].kind, "T") for name in form)
        names = " ".join(name.upper() + ("..." if specs[name].kind == "list[str]" else "") for name in form)
        forms.append(f",{tags} {names}".rstrip())
    text = f"{cls.osc_address()} " + " | ".join(forms)
    return text + (" [key value]..." if cls.OSC_OPTIONS else "")


def _singular(name: str) -> str:
    return name[:-1] if name.endswith("s") else name


def reference() -> str:
    """The OSC address space as text, from the schema: each request with its options' types,
    then each event (for docs and for checking patches against)."""
    lines = ["Requests (to the daemon):"]
    for cls in REQUEST_ADDRESSES.values():
        lines.append(f"  {usage(cls)}")
        if cls.OSC_OPTIONS:
            positional = set(cls.OSC_FORMS[0])
            options = [f"{spec.name} ({'path' if spec.kind == 'audio' else spec.kind})" for spec in fields_of(cls)
                       if spec.name not in positional and spec.name != "id" and spec.kind not in ("list[str]", "list[float]")]
            lines.append(f"      options: {', '.join(options)}")
    lines.append("Events (from the daemon):")
    lines += [f"  {usage(cls, first_only=True)}" for cls in EVENT_ADDRESSES.values()]
    return "\n".join(lines)


def _fields(cls: type[Message], args: Sequence[Any]) -> dict[str, Any]:
    specs = {spec.name: spec for spec in fields_of(cls)}
    form = _pick_form(cls, specs, args)
    data: dict[str, Any] = {}
    for position, name in enumerate(form):
        spec = specs[name]
        if cls.OSC_PAIRS is not None and name == cls.OSC_PAIRS[0]:
            # The pairs end at the first text naming an option (`... "tabla" 0.3 reply_port 9000`).
            tail = args[position:]
            keys = option_keys(cls)
            end = next((i for i, value in enumerate(tail) if isinstance(value, str) and value in keys), len(tail))
            data.update(_pairs(cls, tail[:end]))
            data.update(_options(cls, tail[end:], data))
            return data
        if spec.kind == "list[str]":
            data[name] = list(args[position:])
            return data
        data[name] = _none_if_empty(spec, args[position])
    data.update(_options(cls, args[len(form):], data))
    return data


def _none_if_empty(spec: FieldSpec | None, value: Any) -> Any:
    """OSC has no null: an empty string stands for "none" in an optional string field, positional
    or an option (a patch sends `model ""` from an empty symbol box; the reference says so)."""
    return None if (spec is not None and spec.optional and spec.kind in ("str", "audio") and value == "") else value


def _options(cls: type[Message], options: Sequence[Any], given: dict[str, Any]) -> dict[str, Any]:
    """`key value` pairs as fields (the message checks the names); none may repeat a field in `given`."""
    if len(options) % 2:
        raise InvalidArgument(f"{cls.osc_address()}: options must come in key/value pairs; expected {usage(cls)}")
    specs = {spec.name: spec for spec in fields_of(cls)}
    data: dict[str, Any] = {}
    for key, value in zip(options[::2], options[1::2]):
        if not isinstance(key, str):
            raise InvalidArgument(f"{cls.osc_address()}: option names must be strings, got {key!r}")
        if key in data or key in given:
            raise InvalidArgument(f"{cls.osc_address()}: option {key!r} given twice")
        data[key] = _none_if_empty(specs.get(key), value)
    return data


def _pairs(cls: type[Message], args: Sequence[Any]) -> dict[str, Any]:
    """`TEXT [NUMBER]...` as the two fields OSC_PAIRS names; a missing number is 1 when others are given."""
    assert cls.OSC_PAIRS is not None
    texts: list[Any] = []
    numbers: list[Any] = []
    given = False
    for value in args:
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if is_number and len(numbers) < len(texts):
            numbers.append(value)
            given = True
        elif is_number:
            raise InvalidArgument(f"{cls.osc_address()}: a number must follow a text, got {value!r} after "
                                  f"{len(texts)} text(s); expected {usage(cls)}")
        else:
            if len(numbers) < len(texts):
                numbers.append(1.0)
            texts.append(value)
    if len(numbers) < len(texts):
        numbers.append(1.0)
    texts_name, numbers_name = cls.OSC_PAIRS
    return {texts_name: texts, numbers_name: numbers if given else []}


def _pick_form(cls: type[Message], specs: dict[str, FieldSpec], args: Sequence[Any]) -> tuple[str, ...]:
    for form in cls.OSC_FORMS:
        variadic = bool(form) and specs[form[-1]].kind in ("list[str]", "list[float]")
        fixed = len(form) - 1 if variadic else len(form)
        extra = len(args) - fixed
        if extra < 0:
            continue
        if variadic or extra == 0 or (cls.OSC_OPTIONS and extra % 2 == 0):
            return form
    if cls.OSC_OPTIONS and len(args) >= len(cls.OSC_FORMS[0]):
        raise InvalidArgument(f"{cls.osc_address()}: options must come in key/value pairs; expected {usage(cls)}")
    raise InvalidArgument(f"{cls.osc_address()}: wrong number of arguments ({len(args)}); expected {usage(cls)}")


def frame_tcp(packet: bytes) -> bytes:
    """A packet with its OSC 1.0 stream length prefix."""
    return struct.pack(">i", len(packet)) + packet


class TcpDeframer:
    """Splits an OSC 1.0 TCP byte stream (int32 length, packet) into packets."""

    def __init__(self, max_packet_bytes: int = MAX_OSC_PACKET_BYTES) -> None:
        self._buffer = bytearray()
        self._max_packet_bytes = max_packet_bytes

    def feed(self, data: bytes) -> list[bytes]:
        """Packets completed by `data`; MessageTooLarge for a frame past the limit (the
        stream cannot be trusted after that, so the caller closes it)."""
        self._buffer += data
        packets = []
        while len(self._buffer) >= 4:
            (size,) = struct.unpack(">i", self._buffer[:4])
            if size < 0 or size > self._max_packet_bytes:
                raise MessageTooLarge(f"OSC TCP frame of {size} bytes, over the limit of {self._max_packet_bytes}")
            if len(self._buffer) < 4 + size:
                break
            packets.append(bytes(self._buffer[4 : 4 + size]))
            del self._buffer[: 4 + size]
        return packets
