"""docs/protocol.md is generated from the schema; the committed copy must be current and complete."""

from __future__ import annotations

import inspect

from clients.tools.protocol_reference import OUTPUT, main, render
from protocol import errors
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
            if spec.name not in ("id", "re"):
                assert f"| `{spec.name}` |" in section, (cls.TYPE, spec.name)
    for _, cls in inspect.getmembers(errors, inspect.isclass):
        if issubclass(cls, errors.RiffdError):
            assert f"| `{cls.code}` |" in text
