"""Write the Pd patches from their builders: `python -m clients.pd.patchgen [--check]`.

The .pd files are generated so that the protocol's field kinds (which options go as OSC ints,
which as strings) come from the schema, and so that every box and wire is reviewable as code.
`--check` exits 1 when a committed patch differs from what the builders make (a test runs it).
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from clients.pd.patchgen.abstraction import abstraction
from clients.pd.patchgen.follow import follow_test_patch
from clients.pd.patchgen.jam import jam_abstraction
from clients.pd.patchgen.jam_patches import (
    jam_help_patch, jam_resume_test_patch, jam_test_patch, jam_two_test_patch,
)
from clients.pd.patchgen.patches import (
    clock_test_patch, daemon_test_patch, gap_test_patch, help_patch, requests_patch,
)
from clients.pd.patchgen.pdfile import Canvas
from clients.tools.generated import ROOT, generator_main

#: Where each patch goes, relative to the repository root.
PATCHES: dict[str, Callable[[], Canvas]] = {
    "clients/pd/riffd.pd": abstraction,
    "clients/pd/riffd-help.pd": help_patch,
    "tests/clients_pd/riffd-requests.pd": requests_patch,
    "tests/clients_pd/riffd-daemon-test.pd": daemon_test_patch,
    "tests/clients_pd/riffd-gap-test.pd": gap_test_patch,
    "tests/clients_pd/riffd-follow-test.pd": follow_test_patch,
    "clients/pd/riffd-jam.pd": jam_abstraction,
    "clients/pd/riffd-jam-help.pd": jam_help_patch,
    "tests/clients_pd/riffd-jam-test.pd": jam_test_patch,
    "tests/clients_pd/riffd-jam-resume-test.pd": jam_resume_test_patch,
    "tests/clients_pd/riffd-jam-two-test.pd": jam_two_test_patch,
    "tests/clients_pd/riffd-clock-test.pd": clock_test_patch,
}


def main(argv: list[str] | None = None) -> int:
    return generator_main(argv, prog="python -m clients.pd.patchgen", description=__doc__.splitlines()[0],
                          files={ROOT / relative: _renderer(build) for relative, build in PATCHES.items()})


def _renderer(build: Callable[[], Canvas]) -> Callable[[], str]:
    return lambda: build().render()


if __name__ == "__main__":
    sys.exit(main())
