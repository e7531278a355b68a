"""Daemons for the daemon tests beyond the shared ones in tests/conftest.py: a roomy fake, Jukebox."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_harness import DaemonThread, make_config, start_fake_daemon


@pytest.fixture
def fake_daemon_roomy(tmp_path: Path) -> Iterator[DaemonThread]:
    daemon = start_fake_daemon(tmp_path / "out", max_queue=64)
    yield daemon
    daemon.stop()


@pytest.fixture(scope="module")
def jukebox_daemon(tmp_path_factory: pytest.TempPathFactory, riffd_cache: Path) -> Iterator[DaemonThread]:
    """The real `debug/jukebox` preset beside `debug/musicgen` (Jukebox jobs yield to MusicGen ones)."""
    out = tmp_path_factory.mktemp("jukebox-out")
    config = make_config(out, models=("debug/musicgen", "debug/jukebox"), cache_dir=riffd_cache, max_queue=8)
    daemon = DaemonThread(config).start()
    yield daemon
    daemon.stop()
