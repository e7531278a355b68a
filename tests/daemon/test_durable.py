"""Durable work (issue 18): a daemon killed mid-render, or stopped with jobs queued, and started
again on the same folder finishes them; a damaged journal entry is reported and skipped.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from daemon_harness import OscPeer, free_port, start_fake_daemon, wait_for

from clients import Client
from clients.joining import ChunkJoiner
from daemon.child import DaemonChild
from daemon.journal import Journal
from protocol import wire
from protocol.errors import InvalidArgument
from protocol.messages import Accepted, Done, Generate, Progress, Started

LABELS = dict(artist="Zac Brown Band", genres="Country", lyrics="Chicken fried")
PIECE_S = 8192 / 44100  # debug/jukebox: 1 top-level window (64 tokens), then 7 middle and 31 bottom ones
TOTAL_TOKENS = 64 + 256 + 1024  # progress units: tokens over the three levels
BOTTOM_FROM = 64 + 256  # the bottom level's windows add 32 tokens each from here


def _journal(out: Path) -> Path:
    return out / ".riffd-state" / "journal"


def test_a_render_killed_mid_upsampling_resumes_on_restart_and_equals_an_uninterrupted_one(
        tmp_path: Path, riffd_cache: Path) -> None:
    out = tmp_path / "out"
    ports = [free_port() for _ in range(3)]
    args = ["--model", "debug/jukebox", "--device", "cpu", "--out", str(out), "--cache-dir", str(riffd_cache),
            "--osc-port", str(ports[0]), "--zmq-port", str(ports[1]), "--pub-port", str(ports[2]),
            "--log-level", "INFO"]
    daemon = DaemonChild(args)
    try:
        with Client(daemon.zmq, timeout_s=120) as client:
            stream = client.jukebox_sample(PIECE_S, seed=11, model="debug/jukebox", job="night", save=True, **LABELS)
            seen, joiner = 0, ChunkJoiner()  # what a client reading the stream joins (as collect does)
            for event in stream:
                joiner.add(event)
                if isinstance(event, Progress):
                    seen = event.done
                    if seen >= BOTTOM_FROM + 6 * 32:  # six windows into the bottom level
                        break
            os.kill(daemon.process.pid, signal.SIGKILL)
            daemon.process.wait(10)
            state = json.loads((_journal(out) / "night.state.json").read_text())
            assert state["state"] == "running" and state["seed"] == 11
            with np.load(_journal(out) / "night.ckpt.npz") as checkpoint:
                done, total = (int(value) for value in checkpoint["progress"])
            # At most one window lost: the checkpoint is the last window finished, or the one before if
            # the kill fell between a window's progress event and its checkpoint.
            assert seen - 32 <= done <= TOTAL_TOKENS and total == TOTAL_TOKENS, (seen, done, total)
            assert not (out / "night.wav").exists()

            # The same folder and ports: the client's socket reconnects with its own routing id and hears the
            # resumed job's events on the stream it was reading (its accepted and started once it is heard
            # from again: they were sent before it was back).
            daemon = DaemonChild(args)
            resumed_line = next(line for line in daemon.log if "resumed job night" in line)
            assert f"from its checkpoint at {done} of {TOTAL_TOKENS}" in resumed_line, resumed_line
            status = client.status()
            assert "night" in status.resumed or not _journal_has(out, "night"), status
            rest = list(stream)
            kinds = [type(e) for e in rest]
            restarts = [joiner.add(event) for event in rest]
            assert Accepted in kinds and Started in kinds and kinds[-1] is Done, [e.TYPE for e in rest]
            started = next(e for e in rest if isinstance(e, Started))
            assert started.seed == 11
            # It sampled only what the checkpoint lacked: its progress goes on from the checkpoint's (the
            # first events may have gone before the client was back; tests/jukebox/test_resume.py pins the
            # first window after the checkpoint exactly).
            progress = [e for e in rest if isinstance(e, Progress)]
            assert done < progress[0].done and progress[-1].done == progress[-1].total == TOTAL_TOKENS
            assert not _journal_has(out, "night")  # forgotten once done

            # The uninterrupted render of the same request, on the same daemon.
            reference = list(client.jukebox_sample(PIECE_S, seed=11, model="debug/jukebox", job="ref", save=True,
                                                   **LABELS))
            assert isinstance(reference[-1], Done)
        # The resumed render sends its final audio again from the start (decoded from the checkpoint's
        # codes, then the windows it samples): a client joins it anew, and has the uninterrupted render.
        assert restarts.count(True) == 1 and joiner.restarts == 1
        uninterrupted = ChunkJoiner()
        for event in reference:
            uninterrupted.add(event)
        np.testing.assert_array_equal(joiner.audio(), uninterrupted.audio())
        resumed_audio, rate = sf.read(out / "night.wav", dtype="float32")
        reference_audio, _ = sf.read(out / "ref.wav", dtype="float32")
        assert rate == 44100 and resumed_audio.shape == reference_audio.shape == (8192,)
        np.testing.assert_array_equal(resumed_audio, reference_audio)
        with np.load(out / "night.codes.npz") as night, np.load(out / "ref.codes.npz") as ref:
            np.testing.assert_array_equal(night["top"], ref["top"])
    finally:
        daemon.kill()


def _journal_has(out: Path, job: str) -> bool:
    return (_journal(out) / f"{job}.job").exists()


def test_queued_jobs_survive_a_stop_and_a_damaged_entry_is_skipped(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "out"
    listener = None
    with start_fake_daemon(out, models=("fake/slow",)) as daemon, Client(daemon.zmq, timeout_s=30) as client:
        listener = OscPeer(daemon.osc_port)  # a Max/Pd listener that subscribed once, before the restart
        listener.send("/riffd/subscribe")
        assert listener.receive()[0] == "/riffd/ok"
        streams = [client.generate("x", duration_s=8.0, job=f"take{n}", seed=n, save=True) for n in range(3)]
        live = client.generate("not saved", duration_s=8.0, job="live")  # not journaled: nobody could hear it
        first = streams[0]
        assert isinstance(next(iter(first)), Accepted)
        wait_for(lambda: all((_journal(out) / f"take{n}.job").exists() for n in range(3)))
        assert not (_journal(out) / "live.job").exists()
        del live
        daemon.stop()  # while the client is connected (a client that vanishes has its jobs cancelled)
    # Stopped (SIGTERM's path): the three takes end with shutting_down but stay journaled.
    assert sorted(path.name for path in _journal(out).glob("*.job")) == ["take0.job", "take1.job", "take2.job"]
    # Damage: one entry truncated, one garbage, one state file unreadable (that job starts over).
    (_journal(out) / "take2.job").write_bytes((_journal(out) / "take2.job").read_bytes()[:-7])
    (_journal(out) / "junk.job").write_bytes(b"\x00garbage")
    (_journal(out) / "take1.state.json").write_text("{not json")
    caplog.set_level(logging.INFO)
    with start_fake_daemon(out, models=("fake/slow",)) as daemon, Client(daemon.zmq, timeout_s=30) as client:
        assert "take2.job is unusable" in caplog.text and "junk.job is unusable" in caplog.text
        assert "resumed job take0" in caplog.text and "resumed job take1" in caplog.text
        status = client.status()
        assert set(status.resumed) == {"take0", "take1"} and set(status.jobs) >= {"take0", "take1"}
        wait_for(lambda: (out / "take0.wav").exists() and (out / "take1.wav").exists(), timeout_s=30)
        assert not (out / "take2.wav").exists()
        assert sorted(p.name for p in (_journal(out) / "corrupt").iterdir()) == ["junk.job", "take2.job"]
        wait_for(lambda: client.status().resumed == (), timeout_s=10)
        assert not list(_journal(out).glob("*.job"))  # forgotten once done
        assert isinstance(list(client.generate("after", duration_s=0.5))[-1], Done)  # and it serves on
        # The subscription was kept: the listener heard the resumed takes end, without subscribing again.
        heard = listener.receive_until("/riffd/done", "take1")
        assert ("/riffd/done", "take0") in [(address, args[0]) for address, args in heard]
    listener.close()
    audio, rate = sf.read(out / "take0.wav", dtype="float32")
    assert audio.shape[0] == 8 * rate


def test_journal_entries_round_trip_and_order(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    frames = wire.encode(Generate(prompt="a", duration_s=1.0, job="b", id="r1"))
    journal.record_accepted("b", model="m", save=True, reply={"transport": "osc.udp", "host": "127.0.0.1",
                                                              "port": 9000}, frames=frames)
    time.sleep(0.001)
    journal.record_accepted("a", model="m", save=True, reply=None, frames=frames)
    journal.record_started("a", 5)
    entries = Journal(tmp_path).read()
    assert [e.job_id for e in entries] == ["a", "b"]  # the running one first, then by acceptance
    assert entries[0].running and entries[0].seed == 5 and not entries[1].running
    assert entries[1].reply == {"transport": "osc.udp", "host": "127.0.0.1", "port": 9000}
    assert wire.decode_request(list(entries[1].frames)) == Generate(prompt="a", duration_s=1.0, job="b", id="r1")
    journal.forget("a")
    assert [e.job_id for e in Journal(tmp_path).read()] == ["b"]
    # A checkpoint (synced) says how far a job got and with which seed, even when its state file (not
    # synced: written where a live take waits) was lost, as a power cut may do.
    journal.checkpoint("b").save({"seed": np.array(9), "tokens_0": np.zeros((1, 3), np.int32)}, 3, 10)
    [entry] = Journal(tmp_path).read()
    assert entry.running and entry.seed == 9 and (entry.done, entry.total) == (3, 10)


def test_the_state_dir_holds_the_journal_and_an_unusable_one_is_a_clear_error(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with start_fake_daemon(tmp_path / "out", models=("fake/slow",), state_dir=state) as daemon, \
            Client(daemon.zmq, timeout_s=30) as client:
        client.generate("x", duration_s=8.0, job="kept", save=True)
        wait_for(lambda: (state / "journal" / "kept.job").exists())
        assert not (tmp_path / "out" / ".riffd-state").exists()
        daemon.stop()
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(InvalidArgument, match="--state-dir"):
        start_fake_daemon(tmp_path / "out", state_dir=blocker)


@contextmanager
def _read_only(folder: Path) -> Iterator[None]:
    """`folder` read-only for this process: a read-only bind mount for root (whom file modes do not
    stop), else its mode."""
    if os.geteuid() != 0:
        modes = {path: path.stat().st_mode for path in (folder, *folder.rglob("*"))}
        for path in modes:
            path.chmod(0o555)
        try:
            yield
        finally:
            for path, mode in modes.items():
                path.chmod(mode)
        return
    bind = subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True)
    if bind.returncode != 0:
        pytest.skip(f"cannot make a read-only mount here: {bind.stderr.decode().strip()}")
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], check=True, capture_output=True)
        yield
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_a_journal_folder_that_exists_but_cannot_be_written_is_refused_too(tmp_path: Path) -> None:
    state = tmp_path / "state"
    (state / "journal").mkdir(parents=True)
    with _read_only(state), pytest.raises(InvalidArgument, match=r"\(--state-dir\): (Read-only file system|Permission denied)"):
        start_fake_daemon(tmp_path / "out", state_dir=state)
