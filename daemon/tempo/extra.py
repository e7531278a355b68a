"""riffd's optional `tempo` extra: which of its libraries are installed, and what to tell users without them.

Ableton Link (aalink, GPL-3) and Rubber Band (pylibrb, GPL-2) are GPL-licensed while riffd is MIT,
so they are an extra (`pip install 'riffd[tempo]'`, which .ci/setup.sh installs) rather than
requirements. Jobs in time work without it except for `--link` and `conform`.
"""

from __future__ import annotations

import functools
import importlib.util

INSTALL_HINT = "pip install 'riffd[tempo]'"
#: What conform imports: librosa's beat tracker, scipy's filters, Rubber Band.
CONFORM_MODULES = ("librosa", "scipy", "pylibrb")
LINK_MODULES = ("aalink",)


@functools.cache
def missing(modules: tuple[str, ...]) -> tuple[str, ...]:
    """Those of `modules` that cannot be found (looked up, not imported: cheap at submit time)."""
    return tuple(name for name in modules if not _found(name))


def _found(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # ValueError: a module in sys.modules without a spec
        return False


def conform_missing() -> tuple[str, ...]:
    return missing(CONFORM_MODULES)


def needs_extra(what: str, modules: tuple[str, ...]) -> str:
    """The message for `what` (e.g. "conform") when `modules` are missing."""
    return f"{what} needs riffd's tempo extra ({', '.join(modules)} not installed): {INSTALL_HINT}"
