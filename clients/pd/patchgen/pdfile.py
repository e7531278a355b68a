"""A small writer of Pd patch files: named boxes, wires by name, nested subpatches.

Text is given in Pd's own escaping (`\\$0`, `\\,`); comments get their bare `;` escaped here.
"""

from __future__ import annotations

import re


class Canvas:
    def __init__(self, name: str | None = None, size: tuple[int, int] = (700, 500), font: int = 12) -> None:
        self.name = name
        self.size = size
        self.font = font
        self.items: list[tuple[str, object]] = []
        self.index: dict[str, int] = {}
        self.wires: list[tuple[str, int, str, int]] = []

    def _add(self, key: str | None, line: object) -> str:
        key = key or f"_{len(self.items)}"
        assert key not in self.index, key
        self.index[key] = len(self.items)
        self.items.append((key, line))
        return key

    def obj(self, key: str | None, x: int, y: int, text: str, width: int | None = None) -> str:
        tail = f", f {width}" if width else ""
        return self._add(key, f"#X obj {x} {y} {text}{tail};")

    def msg(self, key: str | None, x: int, y: int, text: str, width: int | None = None) -> str:
        tail = f", f {width}" if width else ""
        return self._add(key, f"#X msg {x} {y} {text}{tail};")

    def floatatom(self, key: str | None, x: int, y: int, width: int = 8, label: str = "-") -> str:
        """A number box (`label` shown on its right; one word)."""
        return self._add(key, f"#X floatatom {x} {y} {width} 0 0 1 {label} - - 0;")

    def symbolatom(self, key: str | None, x: int, y: int, width: int = 8, label: str = "-") -> str:
        return self._add(key, f"#X symbolatom {x} {y} {width} 0 0 1 {label} - - 0;")

    def text(self, x: int, y: int, text: str, width: int | None = 60) -> str:
        tail = f", f {width}" if width else ""
        text = re.sub(r"(?<!\\);", " \\\\;", text)
        return self._add(None, f"#X text {x} {y} {text}{tail};")

    def sub(self, key: str, x: int, y: int, name: str, size: tuple[int, int] = (700, 500)) -> "Canvas":
        child = Canvas(name, size, self.font)
        self._add(key, (child, x, y))
        return child

    def array(self, key: str, x: int, y: int, name: str, size: int, width: int = 200, height: int = 140) -> str:
        lines = (f"#N canvas 0 50 450 250 (subpatch) 0;\n#X array {name} {size} float 2;\n"
                 f"#X coords 0 1 {size} -1 {width} {height} 1 0 0;\n#X restore {x} {y} graph;")
        return self._add(key, lines)

    def wire(self, source: str, sink: str) -> None:
        """`name` or `name:outlet` to `name` or `name:inlet`."""
        a, _, o = source.partition(":")
        b, _, i = sink.partition(":")
        self.wires.append((a, int(o or 0), b, int(i or 0)))

    def chain(self, *names: str) -> None:
        for a, b in zip(names, names[1:]):
            self.wire(a, b)

    def lines(self, x: int = 0, y: int = 50) -> list[str]:
        w, h = self.size
        if self.name is None:
            out = [f"#N canvas {x} {y} {w} {h} {self.font};"]
        else:
            out = [f"#N canvas {x} {y} {w} {h} {self.name} 0;"]
        for _, item in self.items:
            if isinstance(item, tuple):
                child, cx, cy = item
                out += child.lines(40, 80)
                out.append(f"#X restore {cx} {cy} pd {child.name};")
            else:
                out.append(str(item))
        for a, o, b, i in self.wires:
            out.append(f"#X connect {self.index[a]} {o} {self.index[b]} {i};")
        return out

    def render(self) -> str:
        """The patch file's text."""
        return "\n".join(self.lines()) + "\n"
