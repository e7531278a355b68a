"""docs/protocol.md is generated from the schema; the committed copy must be current and complete."""

from __future__ import annotations

import inspect
import re

import pytest

from clients.tools.protocol_reference import OUTPUT, main, render
from protocol import errors, osc
from protocol.errors import InvalidArgument
from protocol.messages import EVENTS, REQUESTS
from protocol.osc import usage
from protocol.schema import fields_of


def test_committed_reference_is_up_to_date() -> None:
    assert main(["--check"]) == 0, "run: python -m clients.tools.protocol_reference"


def test_reference_lists_every_address_field_and_error_code() -> None:
    text = render()
    assert OUTPUT.read_text() == text
    sections = [("request", cls) for cls in REQUESTS.values()] + [("event", cls) for cls in EVENTS.values()]
    for kind, cls in sections:
        heading = f"### {kind}: `{cls.TYPE}`"
        assert text.count(heading) == 1, heading
        section = text.split(heading, 1)[1].split("\n### ", 1)[0]
        assert f"- OSC: `{usage(cls)}`" in section
        for spec in fields_of(cls):
            if spec.name not in ("id", "re") and _sendable(cls, spec.name):
                assert f"| `{spec.name}` |" in section, (cls.TYPE, spec.name)
            elif spec.name == "reply_port":
                assert f"| `{spec.name}` |" not in section, (cls.TYPE, "a field no client can send")
        # A JSON placeholder is unquoted: `"duration_s": "<float>"` read as a string, which is refused.
        assert '": "<' not in section.split("- ZeroMQ header:", 1)[1].split("\n", 1)[0], cls.TYPE
    for _, cls in inspect.getmembers(errors, inspect.isclass):
        if issubclass(cls, errors.RiffdError):
            assert f"| `{cls.code}` |" in text


def _sendable(cls: type, name: str) -> bool:
    """Subscribe's reply_port is in none of its OSC forms, and ZeroMQ refuses every reply_port."""
    return name != "reply_port" or cls not in REQUESTS.values() or bool(cls.OSC_OPTIONS) or any(
        name in form for form in cls.OSC_FORMS)


def test_see_section_references_point_the_right_way() -> None:
    text = render()
    references = list(re.finditer(r"see \*([^*]+)\* (above|below)", text))
    assert references
    for reference in references:
        heading = re.search(rf"^#+ {re.escape(reference[1])}$", text, re.MULTILINE)
        assert heading is not None, reference[0]
        where = "above" if heading.start() < reference.start() else "below"
        assert reference[2] == where, f"{reference[0]!r}: the section is {where}"


def test_frames_show_the_pub_topic_and_done_says_which_rate_its_frames_are_at() -> None:
    text = render()
    frames = text.split("### Frames", 1)[1].split("\n## ", 1)[0]
    assert "On the PUB socket every event has one more frame in front, its topic" in frames
    assert "`[topic, header]` or `[topic, header, pcm]`" in frames
    assert all(f"`{kind}`" in frames for kind in EVENTS)
    done = text.split("### event: `done`", 1)[1].split("\n### ", 1)[0]
    assert "the audio as it streamed" in done and "`out_sample_rate`" in done


def _section(text: str, heading: str) -> str:
    return text.split(f"### {heading}\n", 1)[1].split("\n### ", 1)[0]


def test_the_jam_defaults_read_as_the_daemon_behaves() -> None:
    """QA: a jam's `save` read 'default: yes over OSC' (a jam is saved only when asked, over OSC too),
    and jam_set showed GenerationParams' defaults where a field left out leaves the jam's as it is."""
    text = render()
    save = next(line for line in _section(text, "request: `jam`").splitlines() if line.startswith("| `save` |"))
    assert "default: no, over OSC too" in save and "yes over OSC" not in save
    rows = {line.split("`")[1]: line for line in _section(text, "request: `jam_set`").splitlines()
            if line.startswith("| `")}
    for name in ("prompt", "top_k", "top_p", "temperature", "guidance_scale", "gain"):
        assert "| unchanged |" in rows[name], rows[name]
    assert "| absent |" in rows["at_samples"]


def test_a_take_in_bars_reads_as_the_daemon_decodes_it() -> None:
    """QA: the reference said only "duration_s: positive", so `bars 2` with a duration was refused
    with no word in it on sending duration_s 0; the tempo fields had no meaning at all."""
    text = render()
    bars = next(line for line in _section(text, "request: `generate`").splitlines() if line.startswith("| `bars` |"))
    assert "duration_s 0" in bars
    assert "positive (0 with `bars`)" in text
    assert osc.decode_request("/riffd/generate", ["x", 0.0, "bars", 2]).bars == 2
    with pytest.raises(InvalidArgument, match="duration_s 0"):
        osc.decode_request("/riffd/generate", ["x", 1.0, "bars", 2])
    for name in ("quantum", "bpm", "launch", "loop", "conform"):
        row = next(line for line in _section(text, "request: `generate`").splitlines() if line.startswith(f"| `{name}` |"))
        assert row.split("|")[-2].strip(), name


def test_subscribe_says_what_host_and_port_take() -> None:
    """QA: `subscribe` over ZeroMQ without a port, and a host name other than localhost, were refused
    with nothing in the reference saying so."""
    section = _section(render(), "request: `subscribe`")
    host = next(line for line in section.splitlines() if line.startswith("| `host` |"))
    port = next(line for line in section.splitlines() if line.startswith("| `port` |"))
    assert "IP address" in host and "127.0.0.1 over ZeroMQ" in host
    assert "ZeroMQ needs one" in port


def test_path_not_allowed_names_relative_paths_and_the_readable_folders() -> None:
    """QA: `/riffd/continue ,sf in.wav 1.0` was refused (path_not_allowed: must be absolute) while the
    code's row spoke only of `..`, symlinks and absolute paths elsewhere."""
    row = next(line for line in render().splitlines() if line.startswith("| `path_not_allowed` |"))
    assert "a relative path" in row and "--audio-dir" in row
