"""A small writer of Max patcher JSON: named boxes, wires by name, presentation rects for devices."""

from __future__ import annotations

import json
from typing import Any

#: (inlets, outlets) of the objects these patches use, so Max draws the wires before it has
#: instantiated the boxes (it recomputes them on load).
_IO: dict[str, tuple[int, int]] = {
    "udpsend": (1, 0), "udpreceive": (1, 1), "prepend": (1, 1), "tosymbol": (1, 1), "print": (1, 0),
    "buffer~": (1, 2), "plugin~": (2, 2), "play~": (1, 2), "dac~": (2, 0), "plugout~": (2, 0), "t": (1, 2),
    "zl": (2, 2),
    "loadbang": (1, 1), "live.thisdevice": (1, 3), "opendialog": (1, 1), "conformpath": (1, 2),
    "*~": (2, 1), "*": (2, 1), "/": (2, 1), "deferlow": (1, 1), "metro": (2, 1),
}


class Patcher:
    def __init__(self, rect: tuple[int, int, int, int] = (80, 80, 900, 640), *, device: bool = False) -> None:
        self.rect = rect
        self.device = device
        self.boxes: list[dict[str, Any]] = []
        self.ids: dict[str, str] = {}
        self.lines: list[dict[str, Any]] = []

    def _box(self, key: str | None, maxclass: str, x: int, y: int, width: int, box_text: str | None,
             io: tuple[int, int], presentation: tuple[int, int, int, int] | None, **extra: Any) -> str:
        key = key or f"_{len(self.boxes)}"
        assert key not in self.ids, key
        box_id = f"obj-{len(self.boxes) + 1}"
        self.ids[key] = box_id
        box: dict[str, Any] = {"id": box_id, "maxclass": maxclass, "numinlets": io[0], "numoutlets": io[1],
                               "patching_rect": [x, y, width, 22]}
        if box_text is not None:
            box["text"] = box_text
        if io[1]:
            box["outlettype"] = [""] * io[1]
        if presentation is not None:
            box["presentation"] = 1
            box["presentation_rect"] = list(presentation)
        box.update(extra)
        self.boxes.append({"box": box})
        return key

    def obj(self, key: str | None, x: int, y: int, text: str, width: int = 140,
            presentation: tuple[int, int, int, int] | None = None) -> str:
        name = text.split()[0]
        if name == "route":
            io = (2, len(text.split()))
        elif name in ("unpack", "pack"):
            count = len(text.split()) - 1
            io = (1, count) if name == "unpack" else (count, 1)
        else:
            io = _IO[name]
        return self._box(key, "newobj", x, y, width, text, io, presentation)

    def msg(self, key: str | None, x: int, y: int, text: str, width: int = 200,
            presentation: tuple[int, int, int, int] | None = None) -> str:
        return self._box(key, "message", x, y, width, text, (2, 1), presentation)

    def comment(self, x: int, y: int, text: str, width: int = 400,
                presentation: tuple[int, int, int, int] | None = None) -> str:
        return self._box(None, "comment", x, y, width, text, (1, 0), presentation)

    def ui(self, key: str, maxclass: str, x: int, y: int, width: int = 60,
           presentation: tuple[int, int, int, int] | None = None, io: tuple[int, int] = (1, 2), **extra: Any) -> str:
        """A user-interface box (number, flonum, button, textedit, live.dial...)."""
        return self._box(key, maxclass, x, y, width, None, io, presentation, **extra)

    def wire(self, source: str, sink: str) -> None:
        a, _, o = source.partition(":")
        b, _, i = sink.partition(":")
        self.lines.append({"patchline": {"source": [self.ids[a], int(o or 0)],
                                         "destination": [self.ids[b], int(i or 0)]}})

    def chain(self, *names: str) -> None:
        for a, b in zip(names, names[1:]):
            self.wire(a, b)

    def render(self) -> str:
        patcher: dict[str, Any] = {
            "fileversion": 1,
            "appversion": {"major": 8, "minor": 6, "revision": 0, "architecture": "x64", "modernui": 1},
            "classnamespace": "box",
            "rect": list(self.rect),
            "default_fontsize": 12.0,
            "gridsize": [15.0, 15.0],
            "boxes": self.boxes,
            "lines": self.lines,
        }
        if self.device:
            patcher["openinpresentation"] = 1
            patcher["devicewidth"] = 420.0
        return json.dumps({"patcher": patcher}, indent=2) + "\n"
