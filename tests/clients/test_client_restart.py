"""Clients reading a job while the daemon is killed (SIGKILL) and started again on the same folder
(issue 18): a saved job is resumed and its audio, joined anew, equals an uninterrupted render's;
a job the daemon did not save ends at once with `connection_lost`, not after the client's timeout.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq
from daemon_harness import free_port

from clients import AsyncClient, Client, Rendered
from clients.cli.common import run_job
from clients.joining import ChunkJoiner
from daemon.child import DaemonChild
from protocol.errors import RiffdError
from protocol import wire
from protocol.messages import Accepted, Chunk, Done, Error, Generate, Started

TAKE_S = 30.0  # long enough to be killed in the middle of on a busy 2-core machine (~2 s of work alone)
JUKEBOX_PIECE_S = 2 * 16384 / 44100  # debug/jukebox: ~4 s of upsampling after its first chunk here


class KillableDaemon:
    """`python -m daemon` with a debug preset, on ports and a folder kept across kills."""

    def __init__(self, out: Path, cache: Path, model: str = "debug/musicgen") -> None:
        ports = [free_port() for _ in range(3)]
        # float32: the same seed gives the same audio however the engine is chosen on this machine.
        self.args = ["--model", model, "--device", "cpu", "--engine", "float32", "--out", str(out),
                     "--cache-dir", str(cache), "--osc-port", str(ports[0]), "--zmq-port", str(ports[1]),
                     "--pub-port", str(ports[2]), "--log-level", "INFO"]
        self.child = DaemonChild(self.args)

    @property
    def zmq(self) -> str:
        return self.child.zmq

    def wait_log(self, text: str) -> None:
        deadline = time.monotonic() + 60
        while not any(text in line for line in self.child.log):
            assert time.monotonic() < deadline and self.child.process.poll() is None, "".join(self.child.log)
            time.sleep(0.01)

    def kill_once_streaming(self, job: str) -> None:
        """SIGKILL the daemon a moment after `job` sent its first chunk (the client has some audio)."""
        self.wait_log(f"job {job}: first chunk")
        time.sleep(0.3)
        assert self.child.process.poll() is None, f"job {job} ended before the kill"
        os.kill(self.child.process.pid, signal.SIGKILL)
        self.child.process.wait(10)

    def restart(self) -> None:
        self.child = DaemonChild(self.args)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory, riffd_cache: Path) -> Iterator[KillableDaemon]:
    killable = KillableDaemon(tmp_path_factory.mktemp("restart") / "out", riffd_cache)
    yield killable
    killable.child.kill()


@pytest.fixture(scope="module")
def jukebox_daemon(tmp_path_factory: pytest.TempPathFactory, riffd_cache: Path) -> Iterator[KillableDaemon]:
    killable = KillableDaemon(tmp_path_factory.mktemp("restart-jukebox") / "out", riffd_cache, "debug/jukebox")
    yield killable
    killable.child.kill()


def _reference(daemon: KillableDaemon, seed: int) -> Rendered:
    """The same take rendered without a kill, on the restarted daemon."""
    with Client(daemon.zmq, timeout_s=60) as client:
        return client.generate("restart", duration_s=TAKE_S, seed=seed, job=f"ref-{seed}").collect()


def _in_thread(work: Any) -> tuple[threading.Thread, dict[str, Any]]:
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["value"] = work()
        except Exception as exc:  # noqa: BLE001 - handed to the test to assert on
            result["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


def test_collect_on_a_saved_take_through_a_kill_and_restart_equals_an_uninterrupted_take(
        daemon: KillableDaemon) -> None:
    with Client(daemon.zmq, timeout_s=60) as client:
        stream = client.generate("restart", duration_s=TAKE_S, seed=41, save=True, job="sync-kill")
        thread, result = _in_thread(stream.collect)
        daemon.kill_once_streaming("sync-kill")
        daemon.restart()
        thread.join(120)
    assert "error" not in result, result
    rendered = result["value"]
    assert any("resumed job sync-kill" in line for line in daemon.child.log)
    reference = _reference(daemon, 41)
    assert rendered.audio.shape == reference.audio.shape == (1, round(TAKE_S * reference.sample_rate))
    np.testing.assert_array_equal(rendered.audio, reference.audio)
    assert rendered.path is not None and Path(rendered.path).name == "sync-kill.wav"


def test_the_asyncio_collect_through_a_kill_and_restart_equals_an_uninterrupted_take(daemon: KillableDaemon) -> None:
    async def main() -> Rendered:
        async with AsyncClient(daemon.zmq, timeout_s=60) as client:
            collecting = asyncio.ensure_future(
                client.generate("restart", duration_s=TAKE_S, seed=42, save=True, job="aio-kill").collect())
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, daemon.kill_once_streaming, "aio-kill")
            await loop.run_in_executor(None, daemon.restart)
            return await asyncio.wait_for(collecting, 120)

    rendered = asyncio.run(main())
    np.testing.assert_array_equal(rendered.audio, _reference(daemon, 42).audio)


def test_the_cli_writes_a_resumed_saved_take_whole_and_says_it_started_over(
        daemon: KillableDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    written: dict[str, np.ndarray] = {}

    def write(job: str, blocks: list, sample_rate: int, output: Path | None) -> int:
        written[job] = np.concatenate(blocks, axis=1)
        return 0

    with Client(daemon.zmq, timeout_s=60) as client:
        stream = client.generate("restart", duration_s=TAKE_S, save=True, job="cli-kill")  # the daemon draws a seed
        thread, result = _in_thread(lambda: run_job(client, stream, None, write=write))
        daemon.kill_once_streaming("cli-kill")
        daemon.restart()
        thread.join(120)
    assert result == {"value": 0}, result
    err = capsys.readouterr().err
    assert "cli-kill: the daemon restarted; the job starts over" in err
    # Its seed, shown once (both started events name it), replays the whole take.
    seeds = re.findall(r"cli-kill: seed (\d+)", err)
    assert len(seeds) == 1 and "no longer replays" not in err, err
    np.testing.assert_array_equal(written["cli-kill"], _reference(daemon, int(seeds[0])).audio)


def test_jobs_the_daemon_did_not_save_end_at_once_with_connection_lost(daemon: KillableDaemon, tmp_path: Path) -> None:
    output = tmp_path / "take.wav"
    cli = subprocess.Popen([sys.executable, "-m", "clients.cli.main", "generate", "restart", "--duration",
                            str(2 * TAKE_S), "-o", str(output), "--job", "cli-unsaved", "--endpoint", daemon.zmq],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    daemon.wait_log("job cli-unsaved: accepted")

    async def unsaved() -> Any:
        async with AsyncClient(daemon.zmq, timeout_s=60) as client:
            return [event async for event in client.generate("restart", duration_s=2 * TAKE_S, job="aio-unsaved")][-1]

    with Client(daemon.zmq, timeout_s=60) as client:
        sync_stream = client.generate("restart", duration_s=2 * TAKE_S, job="sync-unsaved")
        thread, aio_result = _in_thread(lambda: asyncio.run(unsaved()))
        daemon.wait_log("job sync-unsaved: accepted")
        daemon.wait_log("job aio-unsaved: accepted")
        daemon.kill_once_streaming("cli-unsaved")
        killed = time.monotonic()
        sync_last = list(sync_stream)[-1]
        thread.join(30)
        _, stderr = cli.communicate(timeout=30)
        waited_s = time.monotonic() - killed
    assert isinstance(sync_last, Error) and sync_last.code == "connection_lost", sync_last
    assert isinstance(aio_result["value"], Error) and aio_result["value"].code == "connection_lost", aio_result
    assert cli.returncode == 2 and "[connection_lost]" in stderr and "not resumed: run it again" in stderr, stderr
    assert waited_s < 20  # not the clients' 60 s (the CLI's 120 s) timeouts
    assert not output.exists()
    daemon.restart()  # nothing of theirs to resume: they were never journaled
    assert not any("resumed job" in line and "unsaved" in line for line in daemon.child.log)


def test_a_client_that_reconnects_late_still_hears_the_resumed_job_from_its_first_chunk(
        daemon: KillableDaemon) -> None:
    """The daemon waits for a resumed job's requester (up to 2 s) before the job starts again: here a
    bare DEALER that retries its connection only every 0.8 s (libzmq's default is 0.1 s)."""
    context = zmq.Context()
    dealer = context.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.setsockopt(zmq.IDENTITY, b"late-client")
    dealer.setsockopt(zmq.RECONNECT_IVL, 800)
    dealer.connect(daemon.zmq)
    try:
        dealer.send_multipart(wire.encode(Generate(prompt="restart", duration_s=TAKE_S, seed=44, save=True,
                                                   job="late", id="r-late")))
        daemon.kill_once_streaming("late")
        daemon.restart()
        assert any("waiting up to 2 s for the clients of 1 resumed job(s)" in line for line in daemon.child.log)
        events = []
        while not events or not isinstance(events[-1], (Done, Error)):
            assert dealer.poll(60_000), [event.TYPE for event in events]
            events.append(wire.decode_event(dealer.recv_multipart()))
    finally:
        dealer.close()
        context.term()
    # What came after the restart: accepted, started, and every chunk from the first.
    restarted = max(at for at, event in enumerate(events) if isinstance(event, Accepted))
    after = events[restarted:]
    assert isinstance(after[1], Started) and isinstance(after[-1], Done), [event.TYPE for event in after]
    chunks = [event for event in after if isinstance(event, Chunk)]
    assert [chunk.index for chunk in chunks] == list(range(len(chunks)))
    assert sum(chunk.frames for chunk in chunks) == after[-1].frames


def test_chunks_missing_from_a_stream_are_an_error_that_says_so() -> None:
    joiner = ChunkJoiner()

    def chunk(index: int, offset: int) -> Chunk:
        return Chunk(job="j", index=index, offset_samples=offset, sample_rate=8, channels=1, frames=4,
                     audio=np.zeros((1, 4), np.float32))

    assert not joiner.add(chunk(0, 0)) and not joiner.add(chunk(1, 4))
    assert joiner.add(chunk(0, 0)) and joiner.frames == 4 and joiner.restarts == 1  # started over
    with pytest.raises(RiffdError, match="chunk 3 starts at 12, expected 4: chunks were lost"):
        joiner.add(chunk(3, 12))


class _Scripted:
    """A job's events as a daemon that restarted in the middle of it sends them (no daemon needed)."""

    def __init__(self, events: list[Any]) -> None:
        self.job = "j"
        self._events = events

    def __iter__(self) -> Iterator[Any]:
        return iter(self._events)

    def cancel(self) -> None:
        raise AssertionError("nothing cancels a job that ends")


@pytest.mark.parametrize("resumed_seed, lines", [
    (7, ["j: seed 7"]),
    (8, ["j: seed 7", "j: seed 8 (the restarted daemon's; seed 7 no longer replays this take)"]),
])
def test_the_cli_shows_a_resumed_jobs_seed_once_and_says_if_it_changed(
        resumed_seed: int, lines: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    def chunk(index: int) -> Chunk:
        return Chunk(job="j", index=index, offset_samples=4 * index, sample_rate=8, channels=1, frames=4,
                     audio=np.zeros((1, 4), np.float32))

    events = [Accepted(job="j", queue_position=0), Started(job="j", model="m", sample_rate=8, channels=1, seed=7),
              chunk(0), Accepted(job="j", queue_position=0),
              Started(job="j", model="m", sample_rate=8, channels=1, seed=resumed_seed), chunk(0), chunk(1),
              Done(job="j", frames=8, sample_rate=8)]
    written: list[int] = []
    assert run_job(None, _Scripted(events), None,  # type: ignore[arg-type]  # run_job asks nothing of the client
                   write=lambda job, blocks, rate, output: written.append(sum(b.shape[1] for b in blocks)) or 0) == 0
    assert written == [8]
    shown = [line for line in capsys.readouterr().err.splitlines() if ": seed " in line]
    assert shown == lines


def test_the_cli_writes_each_lyric_label_once_when_the_daemon_resumes_the_render(
        jukebox_daemon: KillableDaemon, tmp_path: Path) -> None:
    """A resumed render sends its words again from the first (as it sends its audio again): the
    label track still holds each word once, as an uninterrupted render's does."""
    def sample(job: str, labels: Path) -> list[str]:
        return [sys.executable, "-m", "clients.cli.main", "jukebox", "sample", "--duration", str(JUKEBOX_PIECE_S),
                "--artist", "Zac Brown Band", "--genres", "country", "--lyrics", "hello there my friend la di da",
                "--seed", "3", "--save", "--job", job, "-o", str(tmp_path / f"{job}.wav"), "--lyric-labels",
                str(labels), "--endpoint", jukebox_daemon.zmq]

    reference = tmp_path / "reference.txt"
    subprocess.run(sample("labels-ref", reference), check=True, capture_output=True, timeout=120)
    words = reference.read_text(encoding="utf-8").splitlines()
    assert len(words) >= 2, words  # more than one word, or a repeat could not be told from a word

    labels = tmp_path / "labels.txt"
    cli = subprocess.Popen(sample("labels-kill", labels), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Every word is sent while the top level is sampled, before the first (preview) chunk.
    deadline = time.monotonic() + 60
    while not (labels.exists() and len(labels.read_text(encoding="utf-8").splitlines()) == len(words)):
        assert time.monotonic() < deadline and cli.poll() is None, cli.communicate()
        time.sleep(0.01)
    jukebox_daemon.kill_once_streaming("labels-kill")
    jukebox_daemon.restart()
    _, stderr = cli.communicate(timeout=120)
    assert cli.returncode == 0, stderr
    assert "labels-kill: the daemon restarted; the job starts over" in stderr
    assert labels.read_text(encoding="utf-8").splitlines() == words
