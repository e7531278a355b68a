"""Scheduling over real sockets with a fake backend: cancel, queue full, priorities, failures."""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest
from daemon_harness import DaemonThread, Monitor, start_fake_daemon, wait_for

from clients import Client
from protocol.errors import RiffdError
from protocol.messages import Accepted, Chunk, Done, Error, Progress, Started


def _until(stream, kind):
    """Read a stream up to the first event of `kind` (returned)."""
    for event in stream:
        if isinstance(event, kind):
            return event
    raise AssertionError(f"stream ended before a {kind.TYPE}")


def test_cancel_a_running_job_stops_it_within_a_step(fake_daemon: DaemonThread) -> None:
    with Client(fake_daemon.zmq) as client, Client(fake_daemon.zmq) as control:
        stream = client.generate("long", duration_s=60.0, model="fake/slow", job="running")
        events = iter(stream)
        _until(events, Progress)
        started = time.monotonic()
        assert control.cancel("running").subject == "running"
        rest = list(events)
        elapsed_s = time.monotonic() - started
    assert isinstance(rest[-1], Error) and rest[-1].code == "cancelled"
    assert sum(isinstance(e, (Done, Error)) for e in rest) == 1
    # A step of fake/slow takes 50 ms; the whole job would have taken 12 s.
    assert elapsed_s < 1.0


def test_cancel_a_queued_job_and_the_queue_moves_on(fake_daemon: DaemonThread) -> None:
    with Client(fake_daemon.zmq) as client:
        blocker = client.generate("blocker", duration_s=2.0, model="fake/slow", job="blocker")
        _until(blocker, Started)
        queued = client.generate("queued", duration_s=1.0, model="fake/fast", job="queued")
        accepted = _until(iter(queued), Accepted)
        assert accepted.queue_position == 0
        client.cancel("queued")
        rest = list(queued)
        assert [type(e) for e in rest] == [Error] and rest[0].code == "cancelled"
        assert isinstance(list(blocker)[-1], Done)
        with pytest.raises(RiffdError) as info:
            client.cancel("queued")
        assert info.value.code == "not_found"


def test_queue_full_is_refused_at_once(fake_daemon: DaemonThread) -> None:
    # fake_daemon allows 4 queued jobs beside the running one.
    with Client(fake_daemon.zmq) as client:
        running = client.generate("r", duration_s=5.0, model="fake/slow", job="r0")
        _until(iter(running), Started)
        queued = [client.generate("q", duration_s=0.25, job=f"q{n}") for n in range(4)]
        for n, stream in enumerate(queued):
            assert _until(iter(stream), Accepted).queue_position == n
        started = time.monotonic()
        refused = list(client.generate("one too many", duration_s=0.25, job="q4"))
        assert time.monotonic() - started < 1.0
        assert [type(e) for e in refused] == [Error] and refused[0].code == "queue_full"
        client.cancel("r0")
        for stream in queued:
            assert isinstance(list(stream)[-1], Done)


def test_higher_priority_jumps_ahead_of_queued_renders(fake_daemon: DaemonThread) -> None:
    with Client(fake_daemon.zmq) as client, Monitor(fake_daemon.pub) as monitor:
        monitor.sync(client)
        running = client.generate("r", duration_s=0.5, model="fake/slow", job="first")
        _until(iter(running), Started)
        renders = [client.generate("render", duration_s=0.25, job=f"render{n}") for n in range(2)]
        live = client.generate("live", duration_s=0.25, job="live", priority=10)
        assert _until(iter(live), Accepted).queue_position == 0
        for stream in [running, *renders, live]:
            assert isinstance(list(stream)[-1], Done)
        started = [event.job for event in monitor.events_until(lambda e: isinstance(e, Done) and e.job == "render1")
                   if isinstance(event, Started)]
    assert started == ["first", "live", "render0", "render1"]


def test_a_model_that_fails_to_load_is_an_error_event_and_the_daemon_serves_on(fake_daemon: DaemonThread) -> None:
    with Client(fake_daemon.zmq) as client:
        events = list(client.generate("x", duration_s=1.0, model="fake/broken", job="broken"))
        assert isinstance(events[0], Accepted)
        assert isinstance(events[-1], Error) and events[-1].code == "model_unavailable"
        assert "simulated out of memory" in events[-1].message
        with pytest.raises(RiffdError) as info:
            client.load("fake/broken")
        assert info.value.code == "model_unavailable"
        assert isinstance(list(client.generate("y", duration_s=0.5))[-1], Done)


def test_a_backend_crash_mid_stream_is_an_internal_error_and_the_next_job_succeeds(fake_daemon: DaemonThread) -> None:
    with Client(fake_daemon.zmq) as client:
        events = list(client.generate("x", duration_s=1.0, model="fake/crash", job="crash"))
        assert [type(e) for e in events][-2:] == [Chunk, Error]
        assert events[-1].code == "internal" and "simulated backend failure" in events[-1].message
        assert isinstance(list(client.generate("y", duration_s=0.5))[-1], Done)


def test_the_log_says_how_each_job_ended(fake_daemon: DaemonThread, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="daemon.scheduler")
    with Client(fake_daemon.zmq) as client:
        list(client.generate("x", duration_s=1.0, model="fake/broken", job="broken"))
        running = client.generate("r", duration_s=60.0, model="fake/slow", job="running")
        _until(iter(running), Progress)
        queued = client.generate("q", duration_s=0.5, job="queued")
        _until(iter(queued), Accepted)
        client.cancel("queued")
        client.cancel("running")
        list(queued), list(running)
        list(client.generate("y", duration_s=0.5, job="fine"))
    # Each outcome is logged before its client hears it, so every line is here by now.
    ends = {record.getMessage().split(":")[0].removeprefix("job "): (record.levelname, record.getMessage())
            for record in caplog.records if record.name == "daemon.scheduler" and ": started (" not in record.getMessage()}
    assert ends["broken"][0] == "WARNING"
    assert "failed (model_unavailable)" in ends["broken"][1] and "simulated out of memory" in ends["broken"][1]
    assert ends["queued"] == ("INFO", "job queued: cancelled (cancelled): job queued was cancelled before it started")
    assert ends["running"][0] == "INFO" and "cancelled (cancelled)" in ends["running"][1]
    assert ends["fine"] == ("INFO", "job fine: finished")


def test_load_unload_and_models(fake_daemon: DaemonThread) -> None:
    with Client(fake_daemon.zmq) as client:
        assert client.models().loaded == ("fake/fast",)
        assert client.load("fake/stereo").subject == "fake/stereo"
        assert set(client.models().loaded) == {"fake/fast", "fake/stereo"}
        rendered = client.generate("s", duration_s=0.5, model="fake/stereo").collect()
        assert rendered.audio.shape == (2, 8000)
        client.unload("fake/stereo")
        assert client.models().loaded == ("fake/fast",)
        with pytest.raises(RiffdError) as info:
            client.unload("fake/stereo")
        assert info.value.code == "not_found"


def test_duplicate_job_id_and_duration_limit(tmp_path) -> None:
    daemon = start_fake_daemon(tmp_path / "out", max_duration_s=10.0)
    try:
        with Client(daemon.zmq) as client:
            first = client.generate("a", duration_s=2.0, model="fake/slow", job="same")
            _until(iter(first), Started)
            dup = list(client.generate("b", duration_s=1.0, job="same"))
            assert [type(e) for e in dup] == [Error] and dup[0].code == "duplicate_job"
            too_long = list(client.generate("c", duration_s=11.0))
            assert too_long[0].code == "duration_too_long" and "10" in too_long[0].message
            client.cancel("same")
            assert list(first)[-1].code == "cancelled"
    finally:
        daemon.stop()


def test_a_vanished_client_has_its_running_job_cancelled(fake_daemon: DaemonThread) -> None:
    client = Client(fake_daemon.zmq)
    stream = client.generate("gone", duration_s=60.0, model="fake/slow", job="orphan")
    _until(iter(stream), Progress)
    client.close()  # the DEALER disconnects; the daemon's next send to it fails
    with Client(fake_daemon.zmq) as other:
        wait_for(lambda: "orphan" not in other.status().jobs, timeout_s=5.0)


def test_stream_audio_is_the_fake_tone(fake_daemon: DaemonThread) -> None:
    with Client(fake_daemon.zmq) as client:
        rendered = client.generate("tone", duration_s=1.0, seed=0).collect()
    t = np.arange(16000) / 16000
    np.testing.assert_allclose(rendered.audio[0], 0.5 * np.sin(2 * np.pi * 220.0 * t), atol=1e-6)


def test_every_job_ends_exactly_once_when_cancels_race_completion(fake_daemon_roomy: DaemonThread) -> None:
    """Jobs finishing while cancels arrive: each gets one terminal event, and nothing after it."""
    import random

    import zmq

    from protocol import wire
    from protocol.messages import Cancel, Generate

    rng = random.Random(7)
    context = zmq.Context()
    sock = context.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(fake_daemon_roomy.zmq)
    jobs = [f"race{n}" for n in range(24)]
    try:
        for n, job in enumerate(jobs):
            model = "fake/slow" if n % 3 == 0 else "fake/fast"
            sock.send_multipart(wire.encode(Generate("r", rng.choice([0.25, 0.5, 1.0]), model=model, job=job,
                                                     id=job, priority=rng.randint(0, 3))))
            if rng.random() < 0.5:
                target = rng.choice(jobs[: n + 1])
                sock.send_multipart(wire.encode(Cancel(job=target, id=f"c{n}")))
        events: dict[str, list[str]] = {job: [] for job in jobs}
        # Read until every job has ended, then a little longer to catch anything after an end.
        deadline = time.monotonic() + 30
        quiet_until = None
        while time.monotonic() < deadline:
            if quiet_until is None and all(e and e[-1] in ("done", "error") for e in events.values()):
                quiet_until = time.monotonic() + 0.5
            if quiet_until is not None and time.monotonic() > quiet_until:
                break
            if not sock.poll(50):
                continue
            event = wire.decode_event(sock.recv_multipart())
            if event.re in events:
                events[event.re].append(event.TYPE)
    finally:
        sock.close()
        context.term()
    for job, kinds in events.items():
        terminals = [k for k in kinds if k in ("done", "error")]
        assert len(terminals) == 1 and kinds[-1] == terminals[0], (job, kinds)
        assert kinds[0] in ("accepted", "error"), (job, kinds)


def test_stopping_the_daemon_ends_running_and_queued_jobs_with_an_error(tmp_path) -> None:
    daemon = start_fake_daemon(tmp_path / "out")
    with Client(daemon.zmq, timeout_s=10) as client:
        running = client.generate("r", duration_s=60.0, model="fake/slow", job="running", save=True)
        _until(running, Progress)
        queued = client.generate("q", duration_s=1.0, job="queued")
        _until(queued, Accepted)
        daemon.stop()
        endings = [list(running)[-1], list(queued)[-1]]
    assert [(e.job, e.code) for e in endings] == [("running", "shutting_down"), ("queued", "shutting_down")]
    assert not (tmp_path / "out" / "running.wav").exists()
