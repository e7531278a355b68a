"""A local Ray cluster (two CPUs: one per worker), once for tests/cluster (starting it takes seconds),
and a --ray daemon on it per module (one Ray driver per process: modules' daemons take turns)."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from local_ray import LocalRay


@pytest.fixture(scope="package")
def local_ray() -> Iterator[LocalRay]:
    if importlib.util.find_spec("ray") is None:  # not imported here: Ray reads its auth settings at import
        pytest.skip("the riffd[ray] extra is not installed")
    cluster = LocalRay(num_cpus=2).wait_ready()
    saved = {name: os.environ.get(name) for name in cluster.auth_env}
    os.environ.update(cluster.auth_env)  # the daemon joins with the cluster's token (Ray reads its own variables)
    try:
        yield cluster
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
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
