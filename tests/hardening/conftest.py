"""The hardening tests (issue 7) share the daemon harness of tests/daemon."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_harness import DaemonThread, make_config


@pytest.fixture(scope="module")
def debug_daemon(tmp_path_factory: pytest.TempPathFactory, riffd_cache: Path) -> Iterator[DaemonThread]:
    """The real `debug/musicgen` preset through the real registry loader."""
    out = tmp_path_factory.mktemp("hardening-out")
    daemon = DaemonThread(make_config(out, models=("debug/musicgen",), cache_dir=riffd_cache)).start()
    yield daemon
    daemon.stop()
