"""The Python clients, sync and asyncio, against running daemons."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest
from daemon_harness import DaemonThread, free_port

from clients import AsyncClient, Client
from protocol.errors import RiffdError
from protocol.messages import Chunk, Done, Error, Progress


def test_chunks_carry_audio_rate_index_and_offset(fake_daemon: DaemonThread) -> None:
    with Client(fake_daemon.zmq) as client:
        events = list(client.generate("x", duration_s=1.0, model="fake/stereo"))
    chunks = [e for e in events if isinstance(e, Chunk)]
    assert [c.index for c in chunks] == [0, 1, 2, 3]
    assert [c.offset_samples for c in chunks] == [0, 4000, 8000, 12000]
    assert all(c.audio.shape == (2, 4000) and c.audio.dtype == np.float32 and c.sample_rate == 16000 for c in chunks)
    assert isinstance(events[-1], Done)


def test_leaving_a_stream_early_cancels_its_job(fake_daemon: DaemonThread) -> None:
    with Client(fake_daemon.zmq) as client:
        with client.generate("x", duration_s=60.0, model="fake/slow", job="left") as stream:
            for event in stream:
                if isinstance(event, Progress):
                    break
        deadline = time.monotonic() + 5
        while "left" in client.status().jobs:
            assert time.monotonic() < deadline
            time.sleep(0.02)


def test_leaving_a_stream_before_any_event_cancels_the_job_the_daemon_named(fake_daemon: DaemonThread) -> None:
    with Client(fake_daemon.zmq) as client:
        with client.generate("x", duration_s=60.0, model="fake/slow") as stream:
            pass  # no job id asked for, no event read: only the daemon's `accepted` names the job
        assert stream.job is not None
        deadline = time.monotonic() + 5
        while stream.job in client.status().jobs:
            assert time.monotonic() < deadline
            time.sleep(0.02)


def test_collect_raises_the_jobs_error(fake_daemon: DaemonThread) -> None:
    with Client(fake_daemon.zmq) as client:
        with pytest.raises(RiffdError) as info:
            client.generate("x", duration_s=1.0, model="fake/broken").collect()
    assert info.value.code == "model_unavailable"


def test_invalid_options_are_refused_before_sending(fake_daemon: DaemonThread) -> None:
    with Client(fake_daemon.zmq) as client:
        with pytest.raises(RiffdError) as info:
            client.generate("x", duration_s=-1)
        assert info.value.code == "invalid_argument"
        with pytest.raises(TypeError):
            client.generate("x", colour="red")


def test_a_silent_endpoint_times_out() -> None:
    with Client(f"tcp://127.0.0.1:{free_port()}", timeout_s=0.3) as client:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            client.status()
        assert time.monotonic() - started < 2


def test_asyncio_client_streams_two_jobs_concurrently(fake_daemon: DaemonThread, tmp_path: Path) -> None:
    async def main() -> tuple[list, list, object]:
        async with AsyncClient(fake_daemon.zmq) as client:
            async def run(job: str, seed: int) -> list:
                return [event async for event in client.generate("x", duration_s=1.0, seed=seed, job=job)]

            first, second = await asyncio.gather(run("a1", 1), run("a2", 2))
            return first, second, await client.status()

    first, second, status = asyncio.run(main())
    for events, job in ((first, "a1"), (second, "a2")):
        assert all(e.job == job for e in events)
        assert isinstance(events[-1], Done)
        assert [c.offset_samples for c in events if isinstance(c, Chunk)] == [0, 4000, 8000, 12000]
    a1 = np.concatenate([c.audio for c in first if isinstance(c, Chunk)], axis=1)
    a2 = np.concatenate([c.audio for c in second if isinstance(c, Chunk)], axis=1)
    assert not np.array_equal(a1, a2)  # different seeds, different tones: no mixing up
    assert status.running == 0


def test_asyncio_client_errors_and_cancel(fake_daemon: DaemonThread) -> None:
    async def main() -> list:
        async with AsyncClient(fake_daemon.zmq) as client:
            with pytest.raises(RiffdError):
                await client.cancel("nobody")
            stream = client.generate("x", duration_s=60.0, model="fake/slow", job="acancel")
            events = []
            async for event in stream:
                events.append(event)
                if isinstance(event, Progress) and len(events) == 3:
                    await client.cancel("acancel")
            return events

    events = asyncio.run(main())
    assert isinstance(events[-1], Error) and events[-1].code == "cancelled"


def test_asyncio_stream_left_early_in_a_block_cancels_its_job(fake_daemon: DaemonThread) -> None:
    async def main() -> tuple:
        async with AsyncClient(fake_daemon.zmq) as client:
            async with client.generate("x", duration_s=60.0, model="fake/slow", job="aleft") as stream:
                async for event in stream:
                    if isinstance(event, Progress):
                        break
            for _ in range(200):
                status = await client.status()
                if "aleft" not in status.jobs:
                    return status, stream.job
                await asyncio.sleep(0.02)
            return status, stream.job

    status, job = asyncio.run(main())
    assert job == "aleft" and "aleft" not in status.jobs


def test_a_script_points_osc_events_at_a_patch(fake_daemon: DaemonThread) -> None:
    """A ZeroMQ client subscribes an OSC listener (a patch): it hears the script's job, with WAV files."""
    import shutil

    import soundfile as sf
    from daemon_harness import OscDump

    if shutil.which("oscdump") is None:
        pytest.skip("liblo-tools not installed")
    with OscDump() as dump, Client(fake_daemon.zmq) as client:
        assert client.subscribe(dump.port).subject == f"osc.udp://127.0.0.1:{dump.port}"
        events = list(client.generate("x", duration_s=0.5, job="scripted"))
        assert isinstance(events[-1], Done)
        chunk = dump.wait_for(lambda line: line.address == "/riffd/chunk" and line.args[0] == "scripted")
        assert chunk is not None and sf.info(chunk.args[2]).frames == 4000
        # The ZeroMQ chunk named the same file.
        assert [e.path for e in events if isinstance(e, Chunk)][0] == chunk.args[2]
        client.unsubscribe(dump.port)
        with pytest.raises(RiffdError) as info:
            client.unsubscribe(dump.port)
        assert info.value.code == "not_found"
