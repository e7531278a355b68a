"""The machinery behind the message schema: dataclass fields to typed, validated dicts and back.

Every request and event in `protocol.messages` is a frozen dataclass whose annotations say the
field's wire type; the JSON (ZeroMQ) and OSC codecs both read those annotations through
`fields_of`, so adding a field in one place makes it travel on both transports.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from protocol.audio_ref import InlineAudio
from protocol.errors import InvalidArgument

#: Field kinds that travel on the wire.
WireKind = typing.Literal["str", "int", "float", "bool", "list[str]", "list[float]", "audio", "int|str"]

_KIND_OF_TYPE: dict[object, str] = {str: "str", int: "int", float: "float", bool: "bool"}
_ZERO_OF_KIND: dict[str, Any] = {"str": "", "int": 0, "float": 0.0, "bool": False, "list[str]": (), "list[float]": (),
                                  "audio": "", "int|str": 0}
#: Kinds that are sequences (JSON arrays; the variadic tail of an OSC form).
LIST_KINDS = ("list[str]", "list[float]")


@dataclass(frozen=True)
class FieldSpec:
    """One wire field of a message: its name, kind, and whether it may be absent or None."""

    name: str
    kind: str
    optional: bool  # None is a valid value
    required: bool  # no default: a message without it is invalid


class Message:
    """Base of every request and event: `TYPE` names it on the wire (JSON `type`, OSC address)."""

    TYPE: ClassVar[str] = ""
    #: OSC address; "/riffd/<TYPE>" unless a message overrides it.
    OSC_ADDRESS: ClassVar[str] = ""
    #: Positional OSC argument layouts, tried in order; the first is the canonical one.
    OSC_FORMS: ClassVar[tuple[tuple[str, ...], ...]] = ((),)
    #: Whether fields outside the positional form may follow as OSC key/value pairs.
    OSC_OPTIONS: ClassVar[bool] = False
    #: (texts, numbers): two list fields whose items travel interleaved as the variadic tail of the
    #: OSC form that ends with `texts`, `TEXT [NUMBER] TEXT [NUMBER]...` (weighted jam prompts). A
    #: text without a number after it has none: the numbers field is empty when no text has one.
    #: With `OSC_OPTIONS`, options may follow: the first text naming one ends the pairs.
    OSC_PAIRS: ClassVar[tuple[str, str] | None] = None

    @classmethod
    def osc_address(cls) -> str:
        return cls.OSC_ADDRESS or f"/riffd/{cls.TYPE}"

    def validate(self) -> None:
        """Raise InvalidArgument when a value is out of range; types are checked already."""

    def to_fields(self) -> dict[str, Any]:
        """The wire fields whose values differ from None, in declaration order."""
        out: dict[str, Any] = {}
        for spec in fields_of(type(self)):
            value = getattr(self, spec.name)
            if value is not None:
                out[spec.name] = list(value) if spec.kind in LIST_KINDS else value
        return out

    @classmethod
    def from_fields(cls, data: Mapping[str, Any], *, lenient: bool = False, fill_missing: bool = False) -> "Message":
        """Build and validate a message from wire fields.

        `lenient` accepts the looser typing of OSC senders: an integral float for an int
        (Pure Data sends every number as a float), 0/1 for a bool. `fill_missing` gives
        required fields a transport does not carry their kind's zero (OSC events).
        """
        specs = {spec.name: spec for spec in fields_of(cls)}
        unknown = sorted(set(data) - set(specs))
        if unknown:
            raise InvalidArgument(
                f"{cls.TYPE}: unknown field {unknown[0]!r} (known: {', '.join(sorted(specs))})"
            )
        values: dict[str, Any] = {}
        for name, spec in specs.items():
            if name in data:
                values[name] = coerce(spec, data[name], where=cls.TYPE, lenient=lenient)
            elif spec.required and fill_missing:
                values[name] = _ZERO_OF_KIND[spec.kind]
            elif spec.required:
                raise InvalidArgument(f"{cls.TYPE}: missing required field {name!r}")
        message = cls(**values)
        message.validate()
        return message


def fields_of(cls: type) -> tuple[FieldSpec, ...]:
    """The wire fields of a message class (those without `metadata={"wire": False}`)."""
    # Through a plain function: mypy cannot see a message class as Hashable for the cache.
    return _fields_of(cls)


@functools.cache
def _fields_of(cls: type) -> tuple[FieldSpec, ...]:
    hints = typing.get_type_hints(cls)
    specs = []
    for field in dataclasses.fields(cls):
        if not field.metadata.get("wire", True):
            continue
        kind, optional = _kind_of(hints[field.name], f"{cls.__name__}.{field.name}")
        required = field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
        specs.append(FieldSpec(field.name, kind, optional, required))
    return tuple(specs)


def _kind_of(annotation: object, where: str) -> tuple[str, bool]:
    optional = False
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        optional = len(members) < len(typing.get_args(annotation))
        if set(members) == {str, InlineAudio}:
            return "audio", optional
        if set(members) == {int, str}:
            return "int|str", optional  # a number or a word for it (bit_depth: 24, or "float")
        if len(members) != 1:
            raise TypeError(f"{where}: unions other than `X | None`, `str | InlineAudio` and `int | str` are not "
                            "wire types")
        annotation = members[0]
    if annotation in _KIND_OF_TYPE:
        return _KIND_OF_TYPE[annotation], optional
    if typing.get_origin(annotation) is tuple and typing.get_args(annotation) == (str, ...):
        return "list[str]", optional
    if typing.get_origin(annotation) is tuple and typing.get_args(annotation) == (float, ...):
        return "list[float]", optional
    raise TypeError(f"{where}: {annotation!r} is not a wire type")


def coerce(spec: FieldSpec, value: Any, *, where: str, lenient: bool = False) -> Any:
    """Check `value` against the field's kind; return it in the field's Python type."""
    label = f"{where}: {spec.name}"
    if value is None:
        if spec.optional:
            return None
        raise InvalidArgument(f"{label} must not be null")
    if spec.kind == "str":
        if isinstance(value, str):
            return value
    elif spec.kind == "bool":
        if isinstance(value, bool):
            return value
        if lenient and isinstance(value, (int, float)) and value in (0, 1):
            return bool(value)
    elif spec.kind == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if lenient and isinstance(value, float) and math.isfinite(value) and value.is_integer():
            return int(value)
    elif spec.kind == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise InvalidArgument(f"{label} must be a finite number, got {value!r}")
            return float(value)
    elif spec.kind == "list[str]":
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return tuple(value)
    elif spec.kind == "list[float]":
        if isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                    for v in value):
            if not all(math.isfinite(v) for v in value):
                raise InvalidArgument(f"{label} must hold finite numbers, got {_short(value)}")
            return tuple(float(v) for v in value)
    elif spec.kind == "audio":
        # A path, or samples the transport attached (protocol.wire resolves buffer references).
        if isinstance(value, (str, InlineAudio)):
            return value
    elif spec.kind == "int|str":
        if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        if lenient and isinstance(value, float) and math.isfinite(value) and value.is_integer():
            return int(value)
    kind = {"audio": "path or inline audio", "list[float]": "list of numbers", "int|str": "int or str"}.get(
        spec.kind, spec.kind)
    article = "an" if kind[0] in "aeiou" else "a"
    raise InvalidArgument(f"{label} must be {article} {kind}, got {type(value).__name__} {_short(value)}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
