"""docs/hardening.md names the tests behind each row: every one it names must exist."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_every_test_the_hardening_table_names_exists() -> None:
    text = (REPO / "docs" / "hardening.md").read_text()
    named = 0
    current_file: Path | None = None  # `::test` alone means the file named last (as "same" does)
    for row in text.splitlines():
        if not row.startswith("|"):
            continue
        for file_part, test in re.findall(r"`((?:tests/[\w/]+/)?test_\w+\.py)?::(test_\w+)", row):
            if file_part:
                current_file = REPO / (file_part if file_part.startswith("tests/") else f"tests/hardening/{file_part}")
            assert current_file is not None, row
            assert current_file.is_file(), current_file
            assert re.search(rf"^def {test}\(", current_file.read_text(), re.M), f"{current_file.name}::{test}"
            named += 1
    assert named >= 40
