"""Fixtures shared by the whole suite: one preset cache per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The presets are tiny: one thread per process beats several spinning OpenMP threads on a
# 2-core machine shared by the test process and the daemons it starts (which inherit this).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
# Conform's warm-up (seconds of CPU) at the start of every daemon without a tempo source would cost
# the suite minutes; daemons with --link / --bpm still warm up, tests of the warm-up ask for it.
os.environ.setdefault("RIFFD_WARM_CONFORM", "0")
import daemon as _riffd_daemon  # noqa: E402,F401  (its OpenMP wait policy, before any test module imports torch)


@pytest.fixture(scope="session")
def riffd_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache folder where presets are built once per session (RIFFD_TEST_CACHE reuses one across runs)."""
    reuse = os.environ.get("RIFFD_TEST_CACHE")
    if reuse:
        Path(reuse).mkdir(parents=True, exist_ok=True)
        return Path(reuse)
    return tmp_path_factory.mktemp("riffd-cache")


@pytest.fixture
def fake_daemon(tmp_path: Path):
    """A daemon with a fake backend (instant, scripted audio), one per test, queue of 4."""
    from daemon_harness import start_fake_daemon

    daemon = start_fake_daemon(tmp_path / "out", max_queue=4)
    yield daemon
    daemon.stop()


@pytest.fixture(scope="module")
def debug_daemon(tmp_path_factory: pytest.TempPathFactory, riffd_cache: Path):
    """A daemon with the real `debug/musicgen` preset through the real registry loader, one per module."""
    from daemon_harness import DaemonThread, make_config

    out = tmp_path_factory.mktemp("debug-out")
    daemon = DaemonThread(make_config(out, models=("debug/musicgen",), cache_dir=riffd_cache)).start()
    yield daemon
    daemon.stop()
