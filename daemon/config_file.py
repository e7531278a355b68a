"""The daemon's TOML config file: keys spelled like the long flags, each value of its setting's type.

TOML has types of its own, and a value is taken only as the type its setting has: a quoted
"false" is a string, not a switch turned off, and "16" is not a number. A wrong one is refused
naming the key, the type wanted and the value, before anything starts.
"""

from __future__ import annotations

import reprlib
import sys
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from protocol.errors import InvalidArgument

#: Flag spellings whose setting has another name (`--out` sets out_dir).
ALIASES = {"out": "out_dir", "model": "models", "audio_dir": "audio_dirs", "model_dir": "model_dirs"}
#: What each type a setting may have is called in an error; a tuple is a repeatable flag's.
_TYPE_NAMES: dict[Any, str] = {bool: "true or false (a TOML boolean, unquoted)", int: "an integer", float: "a number",
                               str: "a string", Path: "a path (a string)"}


def read_toml(path: Path, name: str) -> dict[str, Any]:
    """The TOML file at `path`; InvalidArgument calling it `name` when it cannot be read or parsed."""
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise InvalidArgument(f"cannot read {name}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidArgument(f"{name} is not valid TOML: {exc}") from None


def read_settings(path: Path, schema: type, *, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The settings in the TOML file at `path`, by field name of the dataclass `schema`, each value
    checked against its field's type (or its type in `overrides`). Unknown keys are left to the caller."""
    data = read_toml(path, f"config file {path}")
    hints = {**typing.get_type_hints(schema), **(overrides or {})}
    settings: dict[str, Any] = {}
    for key, value in data.items():
        # The flag spellings are accepted too (out, max-queue), so a file reads like the command line.
        name = ALIASES.get(key.replace("-", "_"), key.replace("-", "_"))
        if name in hints:
            kinds = _kinds(hints[name])
            if not any(_fits(value, kind) for kind in kinds):
                raise InvalidArgument(f"config file {path}: {key} must be {' or '.join(map(_type_name, kinds))}, "
                                      f"got {reprlib.repr(value)}")
            # As the flag gives it: `bpm = 120` is 120.0.
            value = float(value) if kinds == (float,) else value
        settings[name] = value
    return settings


def _kinds(hint: Any) -> tuple[Any, ...]:
    """The types a value of `hint` may have; None is not one (a setting left out keeps its default)."""
    if isinstance(hint, types.UnionType):
        return tuple(kind for kind in typing.get_args(hint) if kind is not type(None))
    return (hint,)


def _fits(value: Any, kind: Any) -> bool:
    if typing.get_origin(kind) is tuple:  # a repeatable flag: one value or a list of them
        element = typing.get_args(kind)[0]
        return all(_fits(item, element) for item in (value if isinstance(value, list) else [value]))
    if kind is bool:
        return isinstance(value, bool)
    if isinstance(value, bool):  # a bool is an int to Python, never a number to a config file
        return False
    if kind is int:
        return isinstance(value, int)
    if kind is float:
        return isinstance(value, float) or (isinstance(value, int) and abs(value) <= sys.float_info.max)
    if kind in (str, Path):
        return isinstance(value, str)
    raise TypeError(f"a config file cannot give a {kind!r} setting: teach daemon/config_file.py its type")


def _type_name(kind: Any) -> str:
    if typing.get_origin(kind) is tuple:
        return f"{_TYPE_NAMES[typing.get_args(kind)[0]]} or a list of them"
    return _TYPE_NAMES[kind]
