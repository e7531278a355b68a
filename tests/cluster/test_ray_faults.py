"""Faults of a worker on a node of its own (a second `ray start` on this machine): a worker that hangs
rather than dies (its process stopped with SIGSTOP), then its whole node killed. The front's
timeouts end the job with `worker_lost` naming the worker, the front answers meanwhile, a woken
worker serves again, and with no worker left a job gets a clear error. A daemon with short timeouts."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_harness import DaemonThread, make_config, wait_for
from local_ray import LocalRay, LocalRayNode

from clients import Client
from protocol.messages import Chunk, Done, Error

CALL_TIMEOUT_S = 3.0  # a ping on a loaded 2-core machine must still answer in time
STREAM_TIMEOUT_S = 4.0
#: The edge node's CPUs, more than the head's two: a worker reserving them can only run there.
EDGE_CPUS = 3


@pytest.fixture(scope="module")
def edge_node(local_ray: LocalRay) -> Iterator[LocalRayNode]:
    node = local_ray.add_node(EDGE_CPUS).wait_ready()
    try:
        yield node
    finally:
        node.stop()
    assert not node.leftover_pids()


@pytest.fixture(scope="module")
def short_daemon(local_ray: LocalRay, edge_node: LocalRayNode, tmp_path_factory: pytest.TempPathFactory,
                 riffd_cache: Path):
    """One worker, on the edge node, and timeouts of seconds."""
    config = make_config(tmp_path_factory.mktemp("ray-short"), models=("debug/musicgen",), cache_dir=riffd_cache,
                         ray=local_ray.address, ray_workers=1, ray_worker_cpus=float(EDGE_CPUS), max_batch=1,
                         max_duration_s=60.0,
                         ray_call_timeout_s=CALL_TIMEOUT_S, ray_stream_timeout_s=STREAM_TIMEOUT_S)
    daemon = DaemonThread(config).start(timeout_s=180.0)
    try:
        yield daemon
    finally:
        daemon.stop()


def _worker(client: Client) -> dict[str, str]:
    name, *fields = client.status().workers[0].split()
    return {"name": name, **dict(field.split("=", 1) for field in fields)}


def _long_job(daemon: DaemonThread, job_id: str) -> tuple[threading.Thread, threading.Event, list]:
    """A minute of audio over its own ZeroMQ client, started; its events, and a flag set at its first chunk."""
    events: list = []
    first_chunk = threading.Event()

    def run() -> None:
        with Client(daemon.zmq, timeout_s=60) as own:
            for event in own.generate("long", duration_s=60.0, seed=4, chunks=True, job=job_id):
                events.append(event)
                if isinstance(event, Chunk):
                    first_chunk.set()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, first_chunk, events


def test_a_hung_worker_ends_its_job_with_worker_lost_and_serves_again_once_awake(short_daemon: DaemonThread) -> None:
    with Client(short_daemon.zmq, timeout_s=60) as client:
        worker = _worker(client)
        pid = int(worker["pid"])
        job, first_chunk, events = _long_job(short_daemon, "hung")
        try:
            assert first_chunk.wait(60)
            os.kill(pid, signal.SIGSTOP)
            stopped_at = time.monotonic()
            # The front answers while its worker hangs, and marks it lost once a ping times out.
            wait_for(lambda: _worker(client)["health"] == "lost", timeout_s=30, interval_s=0.2)
            job.join(60)
            ended_after_s = time.monotonic() - stopped_at
        finally:
            os.kill(pid, signal.SIGCONT)
        ended = events[-1]
        assert isinstance(ended, Error) and ended.code == "worker_lost", ended
        assert worker["name"] in ended.message and "sent nothing" in ended.message, ended.message
        # Ended by the stream's timeout (plus the wait for the stop's answer), not by the job's end.
        assert ended_after_s < STREAM_TIMEOUT_S + CALL_TIMEOUT_S + 20, ended_after_s
        assert sum(event.frames for event in events if isinstance(event, Chunk)) < 60 * 32000
        # Awake again: the same process answers pings, keeps its model and serves.
        wait_for(lambda: _worker(client)["health"] == "ok", timeout_s=30, interval_s=0.2)
        assert _worker(client)["pid"] == str(pid)
        done = list(client.generate("after", duration_s=1.0, seed=5))
        assert isinstance(done[-1], Done) and done[-1].frames == 32000, done[-1]


def test_a_node_that_dies_mid_job_and_mid_jam_ends_both_with_worker_lost_and_the_front_serves_on(
        short_daemon: DaemonThread, edge_node: LocalRayNode) -> None:
    with Client(short_daemon.zmq, timeout_s=60) as client:
        assert _worker(client)["health"] == "ok"
        job, first_chunk, events = _long_job(short_daemon, "orphan")
        assert first_chunk.wait(60)
        # A jam beside it, on the same worker (jams never queue): its stream lives on the node too.
        with Client(short_daemon.zmq, timeout_s=60) as jamming:
            jam = jamming.jam("orphan jam", seed=3)
            assert any(isinstance(event, Chunk) for event in jam)  # it plays
            edge_node.kill()
            job.join(60)
            jam_ended = next(event for event in jam if isinstance(event, (Error, Done)))
        ended = events[-1]
        assert isinstance(ended, Error) and ended.code == "worker_lost" and "w0" in ended.message, ended
        assert isinstance(jam_ended, Error) and jam_ended.code == "worker_lost" and "during the jam" in jam_ended.message
        wait_for(lambda: _worker(client)["health"] == "lost", timeout_s=30, interval_s=0.2)
        # Ray restarts the worker only where its CPUs are (nowhere now): a new job is told so at once.
        refused = list(client.generate("nowhere", duration_s=1.0, seed=6))[-1]
        assert isinstance(refused, Error) and refused.code == "model_unavailable", refused
        assert "no Ray worker" in refused.message and "w0 lost" in refused.message, refused.message
