"""A debug/musicgen daemon for the recipe tests, which also records the requests of the jobs it runs."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from daemon_harness import DaemonThread, make_config

from daemon.server.app import Daemon
from daemon.sinks import FileSinkFactory
from protocol.messages import JobRequest

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class RequestLog:
    """A sink factory that keeps each started job's request (what the daemon really received)."""

    requests: dict[str, JobRequest] = field(default_factory=dict)

    def __call__(self, job, sample_rate: int, channels: int) -> None:  # noqa: ANN001 - daemon.jobs.Job
        self.requests[job.id] = job.request
        return None


@dataclass
class RecipeDaemon:
    thread: DaemonThread
    log: RequestLog


@pytest.fixture(scope="module")
def recipe_daemon(tmp_path_factory: pytest.TempPathFactory, riffd_cache: Path) -> Iterator[RecipeDaemon]:
    out = tmp_path_factory.mktemp("recipes-out")
    config = make_config(out, models=("debug/musicgen",), cache_dir=riffd_cache)
    log = RequestLog()
    thread = DaemonThread(config)
    thread.daemon = Daemon(config, sink_factories=[FileSinkFactory(out.resolve()), log])
    thread.start()
    yield RecipeDaemon(thread, log)
    thread.stop()


def run_recipe(module: str, *args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess:
    """Run `python -m clients.examples.MODULE ARGS...` from the repository root, as a user would."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", f"clients.examples.{module}", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout_s)
