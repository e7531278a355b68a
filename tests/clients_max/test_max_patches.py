"""Max cannot run here: the committed patches are checked as Max would read them, against the schema.

Every OSC message a patch sends (a message box starting with /riffd/ wired into [udpsend]) must be
a request the protocol knows, with argument types one of its OSC forms accepts; every event a
[route] picks must exist, and an [unpack] behind it must have the event's argument types.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from clients.max.build import main as build_patches
from daemon.config import DEFAULT_OSC_PORT
from protocol import osc
from protocol.osc import EVENT_ADDRESSES, REQUEST_ADDRESSES
from protocol.schema import Message, fields_of

MAX_DIR = Path(__file__).resolve().parents[2] / "clients" / "max"
PATCHES = sorted(MAX_DIR.glob("*.maxpat"))
#: OSC type tags a schema kind accepts from Max (the daemon takes an int for a float field).
ACCEPTS = {"str": {"s"}, "audio": {"s"}, "list[str]": {"s"}, "int": {"i"}, "bool": {"i"}, "float": {"f", "i"}}
TAG_OF_KIND = {"str": "s", "audio": "s", "list[str]": "s", "int": "i", "float": "f", "bool": "i"}


class Patch:
    def __init__(self, path: Path) -> None:
        data = json.loads(path.read_text())
        patcher = data["patcher"]
        self.boxes: dict[str, dict[str, Any]] = {}
        for entry in patcher["boxes"]:
            box = entry["box"]
            assert box["id"] not in self.boxes, f"duplicate id {box['id']}"
            self.boxes[box["id"]] = box
        self.lines = [(line["patchline"]["source"], line["patchline"]["destination"]) for line in patcher["lines"]]

    def sources(self, box_id: str, inlet: int) -> list[tuple[dict[str, Any], int]]:
        return [(self.boxes[src], out) for (src, out), (dst, into) in self.lines if dst == box_id and into == inlet]

    def sinks(self, box_id: str, outlet: int) -> list[tuple[dict[str, Any], int]]:
        return [(self.boxes[dst], into) for (src, out), (dst, into) in self.lines if src == box_id and out == outlet]

    def objects(self, name: str) -> list[dict[str, Any]]:
        return [box for box in self.boxes.values()
                if box["maxclass"] == "newobj" and box["text"].split()[0] == name]

    def event_routes(self) -> list[dict[str, Any]]:
        """The [route] boxes that pick OSC addresses (not, say, [route text])."""
        return [box for box in self.objects("route") if box["text"].split()[1].startswith("/")]

    def outlet_types(self, box: dict[str, Any], outlet: int) -> list[str]:
        """The OSC tags of the atoms a box sends from an outlet (the boxes these patches use)."""
        words = box.get("text", "").split()
        if box["maxclass"] == "newobj" and words[0] == "pack":
            return [_atom_tag(word) for word in words[1:]]
        if box["maxclass"] == "newobj" and words[0] == "unpack":
            return [_atom_tag(words[1 + outlet])]
        if box["maxclass"] == "newobj" and words[0] == "zl" and words[1] == "reg":
            [(source, out)] = self.sources(box["id"], 1)
            return self.outlet_types(source, out)
        raise AssertionError(f"cannot tell what types {box.get('text', box['maxclass'])!r} sends")


def _atom_tag(word: str) -> str:
    """Max's type for an atom: s, i or f (`8.` is a float, `s`/`i`/`f` name pack/unpack types)."""
    if word in ("s", "sym", "symbol"):
        return "s"
    if word in ("i", "int"):
        return "i"
    if word in ("f", "float"):
        return "f"
    if re.fullmatch(r"-?\d+", word):
        return "i"
    if re.fullmatch(r"-?(\d+\.\d*|\.\d+)", word):
        return "f"
    return "s"


def _matches(cls: type[Message], atoms: list[tuple[str, str | None]]) -> dict[str, str | None] | None:
    """The fields (name: literal or None) of the first OSC form of `cls` that accepts these atoms
    ((tag, literal or None) each), or None."""
    specs = {spec.name: spec for spec in fields_of(cls)}
    if cls.OSC_PAIRS is not None:
        # Weighted prompts: the fixed fields, then TEXT WEIGHT pairs (a weight may be a Max int),
        # then options from the first literal naming one.
        fixed = cls.OSC_FORMS[0][:-1]
        head, tail = atoms[:len(fixed)], atoms[len(fixed):]
        keys = osc.option_keys(cls)
        end = next((i for i, (_, literal) in enumerate(tail) if literal in keys), len(tail))
        tail, options = tail[:end], tail[end:]
        if (len(head) == len(fixed) and tail and len(tail) % 2 == 0 and len(options) % 2 == 0
                and all(tag in ACCEPTS[specs[name].kind] for name, (tag, _) in zip(fixed, head))
                and all(text == "s" and weight in ("f", "i") for (text, _), (weight, _) in zip(tail[::2], tail[1::2]))
                and all(key in keys and tag in ACCEPTS[specs[key].kind]
                        for (_, key), (tag, _) in zip(options[::2], options[1::2]))):
            found = {name: literal for name, (_, literal) in zip(fixed, head)}
            found.update({str(key): literal for (_, key), (_, literal) in zip(options[::2], options[1::2])})
            return found
        return None
    for form in cls.OSC_FORMS:
        positional, options = atoms[:len(form)], atoms[len(form):]
        if len(positional) < len(form) or (options and not cls.OSC_OPTIONS) or len(options) % 2:
            continue
        if not all(tag in ACCEPTS[specs[name].kind] for name, (tag, _) in zip(form, positional)):
            continue
        pairs = list(zip(options[::2], options[1::2]))
        if all(key_tag == "s" and key in specs and key not in form and tag in ACCEPTS[specs[key].kind]
               for (key_tag, key), (tag, _) in pairs):
            found = {name: literal for name, (_, literal) in zip(form, positional)}
            found.update({key: literal for (_, key), (_, literal) in pairs})
            return found
    return None


def test_the_devices_seed_box_takes_every_seed_the_daemon_draws() -> None:
    """A take's seed, typed into the Max for Live device, plays it again: the box must reach it."""
    from daemon.seeds import DRAWN_SEED_LIMIT

    [limits] = [box["saved_attribute_attributes"]["valueof"]
                for box in Patch(MAX_DIR / "riffd-device.maxpat").boxes.values()
                if box.get("saved_attribute_attributes", {}).get("valueof", {}).get("parameter_longname") == "riffd seed"]
    assert limits["parameter_mmin"] == 0 and limits["parameter_mmax"] >= DRAWN_SEED_LIMIT - 1


def test_committed_patches_are_what_the_builder_makes() -> None:
    assert build_patches(["--check"]) == 0


@pytest.mark.parametrize("path", PATCHES, ids=lambda p: p.name)
def test_patch_is_valid_max_json(path: Path) -> None:
    patch = Patch(path)
    assert patch.boxes and patch.lines
    for (src, outlet), (dst, inlet) in patch.lines:
        assert 0 <= outlet < patch.boxes[src]["numoutlets"], (src, outlet)
        assert 0 <= inlet < patch.boxes[dst]["numinlets"], (dst, inlet)
    for box in patch.boxes.values():
        assert len(box["patching_rect"]) == 4


@pytest.mark.parametrize("path", PATCHES, ids=lambda p: p.name)
def test_every_request_sent_is_in_the_schema(path: Path) -> None:
    patch = Patch(path)
    [udpsend] = patch.objects("udpsend")
    assert udpsend["text"].split()[1:] == ["127.0.0.1", str(DEFAULT_OSC_PORT)]
    [receive] = patch.objects("udpreceive")
    port = receive["text"].split()[1]
    sent = set()
    for box in patch.boxes.values():
        text = box.get("text", "")
        if box["maxclass"] != "message" or not text.startswith("/riffd/"):
            continue
        address, *words = text.split()
        assert address in REQUEST_ADDRESSES, address
        assert (udpsend, 0) in patch.sinks(box["id"], 0), f"{address} is not wired to udpsend"
        feeding = patch.sources(box["id"], 0)
        atoms = []
        for word in words:
            dollar = re.fullmatch(r"\$(\d+)", word)
            if dollar:
                types = {tuple(patch.outlet_types(source, out)) for source, out in feeding}
                assert len(types) == 1, f"{text}: ambiguous sources"
                atoms.append((types.pop()[int(dollar[1]) - 1], None))
            else:
                atoms.append((_atom_tag(word), word))
        fields = _matches(REQUEST_ADDRESSES[address], atoms)
        assert fields is not None, f"{text}: {atoms} fits no OSC form of {address}"
        # Max's [udpsend] cannot receive: every request must name where [udpreceive] listens (the
        # weighted prompts too, after their pairs: else their `applied` or `error` is lost).
        assert fields.get("reply_port") == port, f"{text}: reply_port is not {port}"
        sent.add(address)
    assert {"/riffd/generate", "/riffd/continue", "/riffd/cancel", "/riffd/status"} <= sent


@pytest.mark.parametrize("path", PATCHES, ids=lambda p: p.name)
def test_every_event_routed_is_in_the_schema(path: Path) -> None:
    patch = Patch(path)
    [receive] = patch.objects("udpreceive")
    routed = set()
    assert patch.event_routes()
    for route in patch.event_routes():
        addresses = route["text"].split()[1:]
        assert (route, 0) in patch.sinks(receive["id"], 0)
        for outlet, address in enumerate(addresses):
            assert address in EVENT_ADDRESSES, address
            routed.add(address)
            event = EVENT_ADDRESSES[address]
            kinds = {spec.name: spec.kind for spec in fields_of(event)}
            tags = [TAG_OF_KIND[kinds[name]] for name in event.OSC_FORMS[0]]
            for sink, _ in patch.sinks(route["id"], outlet):
                words = sink.get("text", "").split()
                if words and words[0] == "unpack":
                    assert [_atom_tag(w) for w in words[1:]] == tags[:len(words) - 1], (address, words)
    assert {"/riffd/accepted", "/riffd/chunk", "/riffd/done", "/riffd/error"} <= routed


@pytest.mark.parametrize("path", PATCHES, ids=lambda p: p.name)
def test_buffers_are_replaced_with_the_files_of_chunk_and_done(path: Path) -> None:
    patch = Patch(path)
    [route] = patch.event_routes()
    addresses = route["text"].split()[1:]
    for address, buffer_name in (("/riffd/chunk", "riffd-chunk"), ("/riffd/done", "riffd-take")):
        event = EVENT_ADDRESSES[address]
        path_index = event.OSC_FORMS[0].index("path")
        [(unpack, _)] = [s for s in patch.sinks(route["id"], addresses.index(address))
                         if s[0]["text"].startswith("unpack")]
        [(prepend, _)] = patch.sinks(unpack["id"], path_index)
        assert prepend["text"] == "prepend replace"
        [(buffer, _)] = patch.sinks(prepend["id"], 0)
        assert buffer["text"] == f"buffer~ {buffer_name}"
        players = [box for box in patch.objects("play~") if box["text"].split()[1] == buffer_name]
        assert players, f"nothing plays {buffer_name}"


def test_the_jam_section_steers_one_jam_with_prompt_sliders() -> None:
    """riffd.maxpat's jam: started from slot 1's text, a slider per slot feeding TEXT WEIGHT pairs."""
    from clients.max.build import JAM, JAM_SLOTS

    patch = Patch(MAX_DIR / "riffd.maxpat")
    texts = {box["text"].split()[0]: box for box in patch.boxes.values()
             if box["maxclass"] == "message" and box.get("text", "").startswith("/riffd/jam/")}
    assert set(texts) == {"/riffd/jam/start", "/riffd/jam/prompts", "/riffd/jam/set", "/riffd/jam/stop",
                          "/riffd/jam/snapshot"}
    starts = [box for box in patch.boxes.values() if box.get("text", "").startswith("/riffd/jam/start")]
    assert {"play 1" in box["text"] and f"job {JAM}" in box["text"] for box in starts} == {True}
    assert any("resume" in box["text"] for box in starts), "a recall button resumes the saved state"
    # The prompts message is fed by one [pack s W s W s W]: a text and a slider per slot.
    [(pack, _)] = patch.sources(texts["/riffd/jam/prompts"]["id"], 0)
    assert patch.outlet_types(pack, 0) == ["s", "f"] * len(JAM_SLOTS)
    sliders = [box for box in patch.boxes.values() if box["maxclass"] == "slider" and patch.sinks(box["id"], 0)]
    assert len(sliders) == len(JAM_SLOTS)  # (the progress bar is a slider too, with nothing behind it)
    for slider in sliders:
        [(trigger, _)] = patch.sinks(slider["id"], 0)
        assert trigger["text"] == "t b f"
        assert (pack, 0) in patch.sinks(trigger["id"], 0), "a slider move sends the blend"
        assert any(sink is pack and inlet % 2 == 1 for sink, inlet in patch.sinks(trigger["id"], 1))
    routed = patch.event_routes()[0]["text"].split()[1:]
    assert "/riffd/applied" in routed and "/riffd/snapshot" in routed


@pytest.mark.parametrize("path", PATCHES, ids=lambda p: p.name)
def test_no_text_a_message_box_sets_is_cut_at_a_comma(path: Path) -> None:
    """In a Max message box a comma ends the message: `set dub techno, deep chords` would set the text
    to "dub techno" and send "deep chords" on its own."""
    patch = Patch(path)
    setters = [box["text"] for box in patch.boxes.values()
               if box["maxclass"] == "message" and box.get("text", "").startswith("set ")]
    assert [text for text in setters if "," in text] == []


@pytest.mark.parametrize("path", PATCHES, ids=lambda p: p.name)
def test_a_take_in_bars_launches_on_the_bar_and_the_clock_is_shown(path: Path) -> None:
    """Issue 15: a generate of N bars (the number box) with launch bar, and the Link tempo and beat
    in number boxes fed by the clock event, asked for while a toggle runs a metro."""
    patch = Patch(path)
    [bargen] = [box for box in patch.boxes.values() if box["maxclass"] == "message"
                and box["text"].startswith("/riffd/generate") and "launch bar" in box["text"]]
    words = bargen["text"].split()
    assert words[2] == "0." and words[words.index("bars") + 1] == "$2"  # duration 0 with bars
    [(pack, _)] = patch.sources(bargen["id"], 0)
    [(bars, _)] = patch.sources(pack["id"], 1)
    assert bars["maxclass"] == "number"
    [clock] = [box for box in patch.boxes.values() if box["maxclass"] == "message"
               and box["text"].startswith("/riffd/clock")]
    [(metro, _)] = patch.sources(clock["id"], 0)
    assert metro["text"].startswith("metro")
    [(toggle, _)] = patch.sources(metro["id"], 0)
    assert toggle["maxclass"] in ("toggle", "live.toggle")
    [route] = patch.event_routes()
    addresses = route["text"].split()[1:]
    [(unpack, _)] = patch.sinks(route["id"], addresses.index("/riffd/clock"))
    form = EVENT_ADDRESSES["/riffd/clock"].OSC_FORMS[0]
    for name in ("tempo", "beat"):
        shown = [box["maxclass"] for box, _ in patch.sinks(unpack["id"], form.index(name))]
        assert shown == ["flonum"], (name, shown)
