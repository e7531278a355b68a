"""A local Ray cluster (two CPUs: one per worker) and a --ray daemon on it, once per module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from local_ray import LocalRay


@pytest.fixture(scope="module")
def local_ray() -> Iterator[LocalRay]:
    pytest.importorskip("ray", reason="the riffd[ray] extra is not installed")
    cluster = LocalRay(num_cpus=2).wait_ready()
    try:
        yield cluster
    finally:
        cluster.stop()
    assert not cluster.leftover_pids()


@pytest.fixture(scope="module")
def ray_daemon(local_ray: LocalRay, tmp_path_factory: pytest.TempPathFactory, riffd_cache: Path):
    """The front daemon: debug/musicgen on two workers of one slot each (so two jobs take both)."""
    from daemon_harness import DaemonThread, make_config

    out = tmp_path_factory.mktemp("ray-out")
    config = make_config(out, models=("debug/musicgen",), cache_dir=riffd_cache, ray=local_ray.address,
                         ray_workers=2, max_batch=1, max_duration_s=60.0, ray_call_timeout_s=10.0,
                         ray_stream_timeout_s=60.0)
    daemon = DaemonThread(config).start(timeout_s=180.0)
    try:
        yield daemon
    finally:
        daemon.stop()
