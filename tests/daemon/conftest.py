"""Daemons for the daemon tests: a fake-backend one per test, the real debug preset per module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_harness import DaemonThread, make_config, start_fake_daemon


@pytest.fixture
def fake_daemon(tmp_path: Path) -> Iterator[DaemonThread]:
    daemon = start_fake_daemon(tmp_path / "out", max_queue=4)
    yield daemon
    daemon.stop()


@pytest.fixture
def fake_daemon_roomy(tmp_path: Path) -> Iterator[DaemonThread]:
    daemon = start_fake_daemon(tmp_path / "out", max_queue=64)
    yield daemon
    daemon.stop()


@pytest.fixture(scope="module")
def debug_daemon(tmp_path_factory: pytest.TempPathFactory, riffd_cache: Path) -> Iterator[DaemonThread]:
    """The real `debug/musicgen` preset through the real registry loader."""
    out = tmp_path_factory.mktemp("debug-out")
    daemon = DaemonThread(make_config(out, models=("debug/musicgen",), cache_dir=riffd_cache)).start()
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
