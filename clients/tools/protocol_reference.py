"""The protocol reference (docs/protocol.md), generated from the schema: `python -m clients.tools.protocol_reference`.

Every OSC address with its argument types and every ZeroMQ message with its JSON fields come
from `protocol.messages` itself (field comments are read from its source), so the reference
cannot drift from what daemon and clients speak. `--check` exits 1 when docs/protocol.md is stale.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import sys

from clients.tools.generated import ROOT, generator_main
from protocol import errors, messages, osc, wire
from protocol.audio_ref import INLINE_RATE_RANGE, MAX_INLINE_CHANNELS
from protocol.params import DEFAULT_MAX_DURATION_S, GenerationParams
from protocol.schema import FieldSpec, Message, fields_of

OUTPUT = ROOT / "docs" / "protocol.md"

_OSC_TAG = {"str": "s", "int": "i", "float": "f", "bool": "T/F (or i 0/1)", "list[str]": "s...", "list[float]": "f...",
            "audio": "s (path)", "int|str": "i or s"}
_JSON_TYPE = {"str": "string", "int": "integer", "float": "number", "bool": "boolean", "list[str]": "array of strings",
              "list[float]": "array of numbers", "audio": "string (path) or inline buffer",
              "int|str": "integer or string"}
_FIELD = re.compile(r"^\s+(\w+): [^=]+(=.*)?$")


def field_comments(cls: type) -> dict[str, str]:
    """`# comment` lines written above each field (a comment covers the fields right under it),
    through the class hierarchy; the sampling controls' comments come from GenerationParams."""
    comments: dict[str, str] = {}
    classes = [GenerationParams, *reversed(cls.__mro__)]
    for klass in classes:
        if not dataclasses.is_dataclass(klass) or not klass.__module__.startswith("protocol."):
            continue
        pending: list[str] = []
        current = ""
        for line in inspect.getsource(klass).splitlines():
            stripped = line.strip()
            if stripped.startswith("#"):
                pending.append(stripped.lstrip("# ").strip())
                continue
            if pending:
                current, pending = " ".join(pending), []
                comments.pop("\0", None)
            match = _FIELD.match(line)
            # A comment covers the field under it, and the next ones it names (bit depth...).
            if match and current and (not comments.get("\0") or match[1].split("_")[-1] in current.lower()):
                comments[match[1]] = current
                comments["\0"] = "covered"
            else:
                current = ""
                comments.pop("\0", None)
    comments.pop("\0", None)
    return comments


def _default(cls: type, spec: FieldSpec) -> str:
    if spec.required:
        return "required"
    field = next(f for f in dataclasses.fields(cls) if f.name == spec.name)
    value = field.default if field.default is not dataclasses.MISSING else field.default_factory()  # type: ignore[operator]
    default = getattr(GenerationParams(), spec.name, None)
    if value is None and cls is messages.JamSet and spec.name in messages.JAM_SET_FIELDS:
        return "unchanged"  # a change names only what it changes
    if value is None and spec.name in messages.SAMPLING_FIELDS and default is not None:
        return f"`{_json(default)}`"
    if value is None:
        return "absent"
    return f"`{_json(list(value) if isinstance(value, tuple) else value)}`"


def _summary(cls: type) -> str:
    return " ".join((inspect.getdoc(cls) or "").split("\n\n")[0].split())


def _message_section(cls: type[Message], *, request: bool) -> list[str]:
    # Positional fields first, in their OSC order; then the options.
    positional = cls.OSC_FORMS[0]
    specs = sorted((spec for spec in fields_of(cls) if spec.name not in ("id", "re") and _carried(cls, spec)),
                   key=lambda spec: positional.index(spec.name) if spec.name in positional else len(positional))
    comments = field_comments(cls)
    lines = [f"### {'request' if request else 'event'}: `{cls.TYPE}`", "", _summary(cls), ""]
    lines.append(f"- OSC: `{osc.usage(cls)}`")
    header = {"v": messages.PROTOCOL_VERSION, "type": cls.TYPE}
    # The placeholders stand unquoted for JSON values: a quoted "<float>" read as a string, which is refused.
    shown = _json(header)[:-1] + "".join(f", \"{spec.name}\": <{spec.kind}>" for spec in specs if spec.required) + "}"
    correlation = "id" if request else "re"
    lines.append(f"- ZeroMQ header: `{shown}` plus optional fields and `\"{correlation}\"`")
    if cls is messages.Chunk:
        lines.append("- ZeroMQ: a second frame holds the PCM (see *Frames* above); over OSC the block is the "
                     "complete WAV file at `path`.")
    lines += ["", "| field | OSC | JSON | default | meaning |", "|---|---|---|---|---|"]
    for spec in specs:
        meaning = comments.get(spec.name, "")
        if spec.name == "reply_port":
            meaning = "OSC only: send the answer (and a job's events) to this UDP port on the sender's host."
        if spec.optional and spec.kind in ("str", "audio"):
            meaning = (meaning + " OSC: an empty string means absent.").strip()
        lines.append(f"| `{spec.name}` | {_OSC_TAG[spec.kind]} | {_JSON_TYPE[spec.kind]} | {_default(cls, spec)} "
                     f"| {meaning} |")
    return lines + [""]


def _carried(cls: type[Message], spec: FieldSpec) -> bool:
    """Whether a client can send the field: a `reply_port` in no OSC form of a message without options
    (subscribe) cannot travel over OSC, and ZeroMQ refuses every reply_port."""
    return (spec.name != "reply_port" or not issubclass(cls, messages.Request) or bool(cls.OSC_OPTIONS)
            or any(spec.name in form for form in cls.OSC_FORMS))


def _json(value: object) -> str:
    import json

    return json.dumps(value, separators=(", ", ": "))


def _error_codes() -> list[str]:
    lines = ["| code | meaning |", "|---|---|"]
    seen = set()
    for _, cls in inspect.getmembers(errors, inspect.isclass):
        if issubclass(cls, errors.RiffdError) and cls.code not in seen:
            seen.add(cls.code)
            meaning = ("A failure inside the daemon (a bug): the message names the exception."
                       if cls is errors.RiffdError else _summary(cls))
            lines.append(f"| `{cls.code}` | {meaning} |")
    return lines


def render() -> str:
    """The whole reference as Markdown."""
    out = [
        "# riffd protocol reference",
        "",
        "<!-- Generated by `python -m clients.tools.protocol_reference` from protocol/; do not edit. -->",
        "",
        f"Protocol version **{messages.PROTOCOL_VERSION}**. One schema (`protocol/messages.py`) defines every "
        "request and event; the OSC and ZeroMQ codecs are derived from it.",
        "",
        "## Transports",
        "",
        "**OSC** (UDP and TCP on the same port, default 7400). A message's address is `/riffd/<type>`; its "
        "arguments are one of the listed positional forms, then (where `[key value]...` is shown) any other "
        "field as a key/value pair: `/riffd/generate ,sfsi \"warm pad\" 8.0 seed 42`. Numbers are lenient: an "
        "integral float is accepted for an integer field (Pure Data sends every number as a float), 0/1 for a "
        "bool. Over TCP every packet is preceded by its length as a big-endian int32 (OSC 1.0 stream framing, as "
        f"liblo sends it). Incoming packets are limited to {osc.MAX_OSC_PACKET_BYTES} bytes; riffd's own "
        f"messages stay under {osc.MAX_OSC_MESSAGE_BYTES} bytes.",
        "",
        "Events go to the address a request came from (its UDP source address, or back down its TCP "
        "connection), to the host of the request at `reply_port` when a request names one, its refusal "
        "included (Max's `[udpsend]` cannot receive). Every subscriber (`/riffd/subscribe`) gets every job's "
        "events (a jam's `applied` and `snapshot` included) and the refusals of requests sent from its own host; "
        "the answer to a control request (`ok`, `status`, `models`, `clock`) goes to its sender only. Over OSC a job's audio "
        "travels as WAV files under the daemon's `--out` folder, each complete (written under a temporary name, "
        "then renamed) before its notice is sent.",
        "",
        "**ZeroMQ** (default port 7401, ROUTER; PUB monitor on 7402). A client connects a DEALER socket and "
        "sends requests; each job's events stream back to it in order, correlated by the request's `id` (an "
        "event's `re`). The PUB socket carries every event, for monitors, behind a topic frame (see *Frames* "
        "below).",
        "",
        "### Frames",
        "",
        "A ZeroMQ message (a request, or an event to its requester) is `[header]`, or `[header, pcm...]`. The header is a UTF-8 JSON object "
        f"`{{\"v\": {messages.PROTOCOL_VERSION}, \"type\": ..., <fields>}}` of at most {wire.MAX_HEADER_BYTES} "
        "bytes; a message with another `v` is refused with `unsupported_version`. PCM is little-endian float32, "
        "`[channels, frames]` in C order (channel-major, not interleaved), exactly `channels * frames * 4` bytes.",
        "",
        "- A `chunk` event is `[header, pcm]`; the header's `channels` and `frames` give the shape.",
        "- On the PUB socket every event has one more frame in front, its topic: the event's `type` as ASCII "
        "bytes, `[topic, header]` or `[topic, header, pcm]` (`[b\"done\", b'{\"v\": 1, \"type\": \"done\", ...}']`). "
        "A SUB socket receives the topics it subscribes to, matched as a prefix (no type is a prefix of "
        "another): `b\"\"` for every event, `b\"done\"` and `b\"error\"` for the ends of jobs. The topics are "
        f"{', '.join(f'`{kind}`' for kind in messages.EVENTS)}.",
        "- A request's audio field (`audio_prompt`, `melody`, `audio`) holds a path the daemon reads, or inline "
        "audio: `{\"buffer\": N, \"sample_rate\": SR, \"channels\": C, \"frames\": F, \"dtype\": \"float32\"}` "
        "naming frame N+1 of the message, which holds the samples "
        f"(1-{MAX_INLINE_CHANNELS} channels, {INLINE_RATE_RANGE[0]}-{INLINE_RATE_RANGE[1]} Hz). "
        "OSC carries paths only.",
        "",
        "Every job (generate, continue, Jukebox) is answered by `accepted`, `started`, `progress` and `chunk` "
        "events and ends with exactly one `done` or `error`. Control requests are answered by one event, the one "
        "their section names (`ok`, `status`, `models`, `clock`, `applied`, `snapshot`), or `error`.",
        "",
        "## Requests",
        "",
    ]
    for cls in messages.REQUESTS.values():
        out += _message_section(cls, request=True)
    out += ["## Events", ""]
    for event_cls in messages.EVENTS.values():
        out += _message_section(event_cls, request=False)
    depths = ", ".join(f"{fmt} {'/'.join(map(str, sizes))}" for fmt, sizes in messages.FORMAT_BIT_DEPTHS.items())
    out += [
        "## Limits",
        "",
        f"- prompt: at most {messages.MAX_PROMPT_CHARS} characters; Jukebox artist and genre: "
        f"{messages.MAX_LABEL_CHARS}; lyrics: {messages.MAX_LYRICS_CHARS}; paths: {messages.MAX_PATH_CHARS}; "
        f"model ids: {messages.MAX_MODEL_ID_CHARS}",
        "- job ids: 1-64 characters of `A-Z a-z 0-9 . _ -`, not starting with `. _ -` (they name files)",
        f"- priority: {messages.PRIORITY_RANGE[0]}..{messages.PRIORITY_RANGE[1]} (higher first); gain: "
        f"0..{messages.MAX_GAIN:g} (linear)",
        f"- format: {', '.join(messages.OUTPUT_FORMATS)}; bit_depth: {depths}; "
        f"out_sample_rate: {messages.OUTPUT_SAMPLE_RATE_RANGE[0]}..{messages.OUTPUT_SAMPLE_RATE_RANGE[1]} Hz",
        f"- duration_s: positive (0 with `bars`), at most the daemon's `--max-duration-s` (default {DEFAULT_MAX_DURATION_S:g}); "
        "a take in `bars` counts what is generated for it: a bar and 12 % more than the take when conformed",
        "",
        "## Error codes",
        "",
        "An `error` event's `code` is stable for programs; its `message` is for people. `job` is empty when "
        "the failing message could not be tied to a job.",
        "",
        *_error_codes(),
        "",
    ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    return generator_main(argv, prog="python -m clients.tools.protocol_reference",
                          description=__doc__.splitlines()[0], files={OUTPUT: render})


if __name__ == "__main__":
    sys.exit(main())
