"""Continuous batching through the daemon: jobs of a batching model run together, in priority
order once the batch is full, and a seeded job sounds the same batched or alone."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
from daemon_harness import DaemonThread, Monitor, make_config, start_fake_daemon

from clients import Client
from protocol.messages import Accepted, Chunk, Done, Error, Started


def _until(stream, kind):
    for event in stream:
        if isinstance(event, kind):
            return event
    raise AssertionError(f"stream ended before a {kind.TYPE}")


def test_a_full_batch_admits_live_work_first_then_renders_in_order(tmp_path: Path) -> None:
    # fake/batch runs two jobs at once, 50 ms a step.
    daemon = start_fake_daemon(tmp_path / "out", models=("fake/batch",), max_queue=8, max_batch=4)
    try:
        with Client(daemon.zmq) as client, Monitor(daemon.pub) as monitor:
            monitor.sync(client)
            # Long enough to outlast the submissions below however loaded the machine; cancelled
            # once the queue holds both renders and the live job. (Two jobs of one length ended
            # together and let live and render0 in at once, whose Started events then raced.)
            # Each started before the next is asked for: two admitted at once tell their Started in either order.
            running = []
            for n in range(2):
                running.append(client.generate("r", duration_s=60.0, model="fake/batch", job=f"running{n}"))
                _until(iter(running[-1]), Started)
            status = client.status()
            assert status.running == 2 and set(status.batched) == {"running0", "running1"}
            queued = [client.generate("r", duration_s=0.5, model="fake/batch", job=f"render{n}") for n in range(2)]
            assert [_until(iter(s), Accepted).queue_position for s in queued] == [0, 1]
            live = client.generate("live", duration_s=0.5, model="fake/batch", job="live", priority=10)
            assert _until(iter(live), Accepted).queue_position == 0
            assert client.status().running == 2  # full: the third waits
            # One place frees at a time: two jobs admitted at once would tell their Started in either order.
            client.cancel("running0")
            _until(iter(live), Started)
            client.cancel("running1")
            for stream in running:
                assert isinstance(list(stream)[-1], Error)
            for stream in [*queued, live]:
                assert isinstance(list(stream)[-1], Done)
            events = monitor.events_until(lambda e: isinstance(e, Done) and e.job == "render1")
    finally:
        daemon.stop()
    started = [e.job for e in events if isinstance(e, Started)]
    assert started == ["running0", "running1", "live", "render0", "render1"]
    # Never more than the model's two at once.
    at_once, most = 0, 0
    for event in events:
        if isinstance(event, Started):
            at_once += 1
            most = max(most, at_once)
        elif isinstance(event, (Done, Error)):
            at_once -= 1
    assert most == 2


def test_seeded_jobs_sound_the_same_batched_over_zeromq(tmp_path: Path, riffd_cache: Path) -> None:
    config = make_config(tmp_path / "out", models=("debug/musicgen",), cache_dir=riffd_cache, engine="int8")
    daemon = DaemonThread(config).start()
    try:
        with Client(daemon.zmq, timeout_s=60) as client, Client(daemon.zmq, timeout_s=60) as other:

            def audio(events) -> np.ndarray:
                return np.concatenate([e.audio for e in events if isinstance(e, Chunk)], axis=1)

            long_job = iter(client.generate("a long take", duration_s=3.0, seed=1, job="long"))
            _until(long_job, Chunk)
            # Status is watched the whole time the short job runs: asked once after its first
            # chunk, it could come after a tiny model had decoded all of it (seen under load).
            seen: list[tuple[frozenset[str], int]] = []
            watching = threading.Event()
            watching.set()

            def watch() -> None:
                with Client(daemon.zmq, timeout_s=60) as watcher:
                    while watching.is_set():
                        status = watcher.status()
                        seen.append((frozenset(status.batched), status.running))
                        time.sleep(0.01)

            watcher = threading.Thread(target=watch)
            watcher.start()
            try:
                short = iter(other.generate("a short one", duration_s=1.0, seed=2, job="short"))
                joining = list(short)
            finally:
                watching.clear()
                watcher.join()
            assert isinstance(joining[-1], Done)
            assert (frozenset({"long", "short"}), 2) in seen  # stepping together
            assert isinstance(list(long_job)[-1], Done)
            alone = list(other.generate("a short one", duration_s=1.0, seed=2, job="short-alone"))
            np.testing.assert_array_equal(audio(joining), audio(alone))
    finally:
        daemon.stop()
