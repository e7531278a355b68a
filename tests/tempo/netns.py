"""A private network namespace for Link tests: Link's multicast never leaves it.

Made as root with iproute2 (`ip netns add`), loopback up with multicast on and 224.0.0.0/4 routed
to it. Processes run in it through `ip netns exec`; the test's own client joins it from one
thread (setns(2) moves only the calling thread; sockets it makes, and ZeroMQ's I/O threads
started from it, stay in the namespace).
"""

from __future__ import annotations

import ctypes
import os
import secrets
import shutil
import subprocess
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
CLONE_NEWNET = 0x40000000


def unavailable() -> str | None:
    """Why namespaces cannot be made here (None: they can)."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "iproute2's ip is not installed"
    return None


class Namespace:
    """`ip netns add` on enter, `ip netns delete` (and every process started in it killed) on exit."""

    def __init__(self) -> None:
        self.name = f"riffd-{os.getpid()}-{secrets.token_hex(3)}"
        self._processes: list[subprocess.Popen] = []

    def __enter__(self) -> "Namespace":
        _ip("netns", "add", self.name)
        try:
            _ip("-n", self.name, "link", "set", "lo", "up", "multicast", "on")
            _ip("-n", self.name, "route", "add", "224.0.0.0/4", "dev", "lo")
        except Exception:
            _ip("netns", "delete", self.name)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for process in self._processes:
            if process.poll() is None:
                process.kill()
                process.wait(10)
        _ip("netns", "delete", self.name)

    def command(self, args: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *args]

    def popen(self, args: list[str], **kwargs: object) -> subprocess.Popen:
        process = subprocess.Popen(self.command(args), **kwargs)  # type: ignore[call-overload]
        self._processes.append(process)
        return process

    def call(self, work: Callable[[], T], timeout_s: float = 120.0) -> T:
        """Run `work()` on a thread inside the namespace and return its result."""
        outcome: dict[str, object] = {}

        def run() -> None:
            try:
                fd = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
                try:
                    if ctypes.CDLL("libc.so.6", use_errno=True).setns(fd, CLONE_NEWNET) != 0:
                        raise OSError(ctypes.get_errno(), "setns failed")
                finally:
                    os.close(fd)
                outcome["value"] = work()
            except BaseException as exc:  # noqa: BLE001 - handed back to the caller
                outcome["error"] = exc

        thread = threading.Thread(target=run, name=f"in-{self.name}", daemon=True)
        thread.start()
        thread.join(timeout_s)
        if thread.is_alive():
            raise TimeoutError(f"work in namespace {self.name} did not finish in {timeout_s} s")
        if "error" in outcome:
            raise outcome["error"]  # type: ignore[misc]
        return outcome["value"]  # type: ignore[return-value]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=10)
