"""Helpers for the recipe tests: a request log the daemon fills, and running a recipe as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from daemon_harness import DaemonThread

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


def run_recipe(module: str, *args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess:
    """Run `python -m clients.examples.MODULE ARGS...` from the repository root, as a user would."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", f"clients.examples.{module}", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout_s)
