"""A daemon with the real debug/musicgen preset, shared by the Pd tests of this folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_harness import DaemonThread, make_config


@pytest.fixture(scope="module")
def debug_daemon(tmp_path_factory: pytest.TempPathFactory, riffd_cache: Path) -> Iterator[DaemonThread]:
    out = tmp_path_factory.mktemp("pd-out")
    daemon = DaemonThread(make_config(out, models=("debug/musicgen",), cache_dir=riffd_cache)).start()
    yield daemon
    daemon.stop()
