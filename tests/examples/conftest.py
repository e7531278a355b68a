"""A debug/musicgen daemon for the recipe tests, which also records the requests of the jobs it runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_harness import DaemonThread, make_config
from recipe_harness import RecipeDaemon, RequestLog

from daemon.server.app import Daemon
from daemon.sinks import FileSinkFactory


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
