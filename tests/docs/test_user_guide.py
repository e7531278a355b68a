"""The README and the docs name flags, modules and files: each must exist, so they cannot rot silently."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import io
import re
import subprocess
import sys
from pathlib import Path

import pytest

from clients.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "docs" / "user-guide.md", ROOT / "README.md", ROOT / "docs" / "jukebox.md", ROOT / "docs" / "realtime-log.md"]
GUIDE = DOCS[0].read_text()
RECIPES = ("live_pads", "continue_region", "setlist", "jam_controller")


def _cli_flags() -> set[str]:
    """Every option string of `riffd` and its subcommands."""
    flags: set[str] = set()
    parsers = [build_parser()]
    while parsers:
        parser = parsers.pop()
        for action in parser._actions:
            flags.update(option for option in action.option_strings if option.startswith("--"))
            if isinstance(action, argparse._SubParsersAction):
                parsers.extend(action.choices.values())
    return flags


def _recipe_flags(name: str) -> set[str]:
    module = importlib.import_module(f"clients.examples.{name}")
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        module.main(["--help"])
    return set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", out.getvalue()))


def _bench_flags(name: str) -> set[str]:
    """The flags of `python -m bench.NAME` (its --help)."""
    module = importlib.import_module(f"bench.{name}")
    out = io.StringIO()
    argv = sys.argv
    try:
        sys.argv = [name, "--help"]
        with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
            module.main(["--help"]) if inspect.signature(module.main).parameters else module.main()
    finally:
        sys.argv = argv
    return set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", out.getvalue()))


def _ray_flags(text: str) -> set[str]:
    """Flags of the `ray SUBCOMMAND` commands a doc shows (Ray's own CLI, from the riffd[ray] extra),
    as that command's --help lists them; without Ray installed, the flags those lines name."""
    found: set[str] = set()
    for command, rest in set(re.findall(r"(?:^|`)ray ([a-z][\w-]*)([^`\n]*)", text, flags=re.M)):
        ray_cli = Path(sys.executable).with_name("ray")
        if not ray_cli.exists():
            found |= set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", rest))
            continue
        help_text = subprocess.run([str(ray_cli), command, "--help"], capture_output=True, text=True,
                                   timeout=120).stdout
        found |= set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", help_text))
    return found


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_flag_a_doc_names_exists(doc: Path) -> None:
    benches = set(re.findall(r"python -m bench\.(\w+)", doc.read_text()))
    known = _cli_flags().union(*(_recipe_flags(name) for name in RECIPES), *(_bench_flags(b) for b in benches),
                               _ray_flags(doc.read_text()))
    named = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", doc.read_text()))
    assert named - known == set(), f"{doc.name} names flags nothing accepts: {sorted(named - known)}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_module_and_file_a_doc_names_exists(doc: Path) -> None:
    text = doc.read_text()
    for module in re.findall(r"python -m ([\w.]+)", text):
        importlib.import_module(module)
    for module in re.findall(r"`(bench\.[\w]+)`", text):
        importlib.import_module(module)
    for path in re.findall(r"`((?:clients|docs|tests|daemon|protocol)/[\w./-]+)`", text):
        assert (ROOT / path).exists(), path
    for link in re.findall(r"\]\(([\w/-]+\.md)(?:#[\w-]+)?\)", text):
        assert (doc.parent / link).exists(), link


def test_every_error_code_the_guide_names_exists() -> None:
    """Backticked snake_case words are schema fields, request types or error codes; the codes must be real."""
    from protocol import errors
    from protocol.messages import EVENTS, REQUESTS
    from protocol.schema import fields_of

    codes = {cls.code for cls in vars(errors).values() if isinstance(cls, type) and issubclass(cls, errors.RiffdError)}
    fields = {spec.name for cls in [*REQUESTS.values(), *EVENTS.values()] for spec in fields_of(cls)}
    named = set(re.findall(r"`([a-z]+(?:_[a-z]+)+)[`:]", GUIDE)) - fields - set(REQUESTS) - {"save_pretrained"}
    assert "model_unavailable" in named and named <= codes, sorted(named - codes)


def test_the_touchosc_addresses_the_guide_names_are_the_ones_live_pads_uses() -> None:
    """Each OSC address in the guide's TouchOSC section is one that clients/examples/live_pads.py
    handles or sends (its literals; `{...}` in an f-string stands for a pad's number)."""
    section = GUIDE.split("### TouchOSC", 1)[1].split("\n### ", 1)[0]
    named = re.findall(r"`(/1/[^`]*)`", section)
    source = (ROOT / "clients" / "examples" / "live_pads.py").read_text()
    patterns = [re.sub(r"\{[^}]*\}", r"\\d+", literal) for literal in re.findall(r'"(/1/[^"]*)"', source)]
    unknown = [address for address in named if not any(re.fullmatch(pattern, address) for pattern in patterns)]
    assert unknown == [], f"the guide names addresses live_pads does not use: {unknown} (it uses {patterns})"
    assert {"/1/push1", "/1/fader1", "/1/label1", "/1/led1"} <= set(named), named
