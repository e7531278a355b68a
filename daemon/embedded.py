"""A daemon running inside this process, on its own thread with its own asyncio loop.

For scripts, benchmarks and tests that want a real daemon (real sockets on its configured
interface) without starting a process.
"""

from __future__ import annotations

import asyncio
import threading

from pathlib import Path

from daemon.config import DaemonConfig, build_config
from daemon.residency import Loader
from daemon.server.app import Addresses, Daemon


class DaemonThread:
    """A real Daemon, its own asyncio loop on a thread; real sockets on 127.0.0.1."""

    def __init__(self, config: DaemonConfig, loader: Loader | None = None) -> None:
        self.config = config
        self.daemon = Daemon(config, loader=loader)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="test-daemon", daemon=True)

    def start(self, timeout_s: float = 120.0) -> "DaemonThread":
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise TimeoutError("daemon did not start")
        if self._error is not None:
            raise self._error
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        if self._loop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self.daemon.request_stop)
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), "daemon did not stop"

    @property
    def addresses(self) -> Addresses:
        assert self.daemon.addresses is not None
        return self.daemon.addresses

    @property
    def osc_port(self) -> int:
        return self.addresses.osc_port

    @property
    def zmq(self) -> str:
        return self.addresses.zmq_endpoint

    @property
    def pub(self) -> str:
        return self.addresses.pub_endpoint

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            try:
                await self.daemon.start()
            except BaseException as exc:
                self._error = exc
                self._ready.set()
                await self.daemon.stop()
                return
            self._ready.set()
            await self.daemon.wait()
            await self.daemon.stop()

        asyncio.run(main())

    def __enter__(self) -> "DaemonThread":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_on_loopback(models: tuple[str, ...], out_dir: Path, **settings: object) -> DaemonThread:
    """A started daemon serving `models` on 127.0.0.1, on free ports, files under `out_dir`."""
    config = build_config(dict(models=models, host="127.0.0.1", osc_port=0, zmq_port=0, pub_port=0, web_port=0,
                               out_dir=out_dir, log_level="WARNING", **settings))
    return DaemonThread(config).start()
