"""A local Ray cluster for tests: `ray start --head --block` with the test's own ports and temp
folder, ended by its process group, and any process of it left behind killed by pid."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _free_ports(count: int) -> list[int]:
    sockets, ports = [], []
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sockets.append(sock)
        ports.append(sock.getsockname()[1])
    for sock in sockets:
        sock.close()
    return ports


class LocalRay:
    """A head node on this machine with `num_cpus` CPUs (one per worker the tests start)."""

    def __init__(self, num_cpus: int = 2) -> None:
        # Short: Ray's unix sockets live under it, and their paths have a length limit.
        self.temp_dir = Path(tempfile.mkdtemp(prefix="rr-", dir="/tmp"))
        gcs, node_manager, object_manager, agent, metrics, runtime_env, dashboard = _free_ports(7)
        self.address = f"127.0.0.1:{gcs}"
        ray_cli = str(Path(sys.executable).with_name("ray"))
        command = [ray_cli, "start", "--head", "--block", f"--port={gcs}", f"--num-cpus={num_cpus}", "--num-gpus=0",
                   f"--temp-dir={self.temp_dir}", "--include-dashboard=false", "--disable-usage-stats",
                   "--node-ip-address=127.0.0.1", f"--node-manager-port={node_manager}",
                   f"--object-manager-port={object_manager}", f"--dashboard-agent-listen-port={agent}",
                   f"--metrics-export-port={metrics}", f"--runtime-env-agent-port={runtime_env}",
                   f"--dashboard-port={dashboard}", "--object-store-memory=200000000"]
        # Ray's token authentication stays on, with this cluster's own token: the head and every
        # process joining it (the daemon under test) read it from RAY_AUTH_TOKEN_PATH.
        token = self.temp_dir / "auth_token"
        token.write_text(secrets.token_hex(32))
        token.chmod(0o600)
        self.auth_env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
        self._log = open(self.temp_dir / "ray-start.log", "w")
        self._process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
                                         env={**os.environ, "RAY_ADDRESS": "", **self.auth_env})

    def add_node(self, num_cpus: int) -> "LocalRayNode":
        """A second node of this cluster on this machine (`ray start --address`), with its own
        folder, ports and CPUs: a node the tests can kill whole."""
        return LocalRayNode(self, num_cpus)

    def wait_ready(self, timeout_s: float = 90.0) -> "LocalRay":
        """Until the head node has registered (its raylet's socket exists)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"ray start exited: {(self.temp_dir / 'ray-start.log').read_text()[-2000:]}")
            if any(self.temp_dir.glob("session_*/sockets/raylet*")):
                return self
            time.sleep(0.2)
        raise TimeoutError(f"the Ray head did not start: {(self.temp_dir / 'ray-start.log').read_text()[-2000:]}")

    def stop(self) -> None:
        """End every process of this cluster, by pid: those of the session `ray start` began (Ray's
        own processes and its workers) and any other naming our folder. Nothing else is touched."""
        for _ in range(20):
            left = self.leftover_pids()
            if not left:
                break
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)
        self._process.wait(10)
        self._log.close()
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def leftover_pids(self) -> list[int]:
        """Processes of this cluster still alive: in the session of `ray start` or naming its folder."""
        return _pids_of(self._process.pid, self.temp_dir)


class LocalRayNode(LocalRay):
    """A worker node joining `head`: `ray start --address --block` with its own ports and folder."""

    def __init__(self, head: LocalRay, num_cpus: int) -> None:  # not LocalRay.__init__: that starts a head
        self.temp_dir = Path(tempfile.mkdtemp(prefix="rn-", dir="/tmp"))
        self.address = head.address
        self.auth_env = head.auth_env
        node_manager, object_manager, agent, metrics, runtime_env = _free_ports(5)
        ray_cli = str(Path(sys.executable).with_name("ray"))
        command = [ray_cli, "start", f"--address={head.address}", "--block", f"--num-cpus={num_cpus}", "--num-gpus=0",
                   f"--temp-dir={self.temp_dir}", "--disable-usage-stats", "--node-ip-address=127.0.0.1",
                   f"--node-manager-port={node_manager}", f"--object-manager-port={object_manager}",
                   f"--dashboard-agent-listen-port={agent}", f"--metrics-export-port={metrics}",
                   f"--runtime-env-agent-port={runtime_env}", "--object-store-memory=100000000"]
        self._log = open(self.temp_dir / "ray-start.log", "w")
        self._process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
                                         env={**os.environ, "RAY_ADDRESS": "", **self.auth_env})

    def kill(self) -> None:
        """The node dies at once, every process of it (raylet, object store, workers) by SIGKILL."""
        for pid in self.leftover_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _pids_of(session: int, folder: Path) -> list[int]:
    """Live processes in `session` or naming `folder` on their command line (not this one)."""
    marker = str(folder).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            state, sid = fields[0], int(fields[3])
            if state != "Z" and (sid == session or marker in (entry / "cmdline").read_bytes()):
                found.append(int(entry.name))
        except (OSError, ValueError):
            continue
    return found
