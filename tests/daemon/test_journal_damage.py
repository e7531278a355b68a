"""Journal entries that are whole (their checksum holds) but hold nonsense: each one is set aside
and the daemon starts, resuming the good entries, whatever order the files sort in (issue 18)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytest
import soundfile as sf
from daemon_harness import start_fake_daemon, wait_for

from clients import Client
from daemon.journal import Journal, encode_entry
from protocol import wire
from protocol.messages import Done, Generate, GetStatus

#: One damaged field each (`None` as a value: the key is missing altogether).
BAD_META: dict[str, dict[str, Any]] = {
    "ns-text": {"accepted_ns": "abc"},
    "ns-float": {"accepted_ns": 1.5},
    "ns-negative": {"accepted_ns": -1},
    "ns-bool": {"accepted_ns": True},
    "ns-missing": {"accepted_ns": None},
    "save-text": {"save": "yes"},
    "save-int": {"save": 1},
    "save-missing": {"save": None},
    "model-list": {"model": ["fake/fast"]},
    "model-empty": {"model": ""},
    "model-missing": {"model": None},
    "reply-text": {"reply": "tcp://127.0.0.1:1"},
    "reply-list": {"reply": ["osc.udp", "127.0.0.1", 9000]},
    "reply-missing": {"reply": None},
}


def _journal(out: Path) -> Path:
    return out / ".riffd-state" / "journal"


def _entry(job: str, meta_changes: dict[str, Any] | None = None, *, frames: list[bytes] | None = None,
           request_job: str | None = "") -> bytes:
    """An entry as record_accepted writes it (valid checksum), with `meta_changes` applied."""
    request = Generate(prompt="journal", duration_s=0.5, job=job if request_job == "" else request_job, save=True,
                       seed=3)
    meta: dict[str, Any] = dict(job=job, model="fake/fast", save=True, reply=None, accepted_ns=time.time_ns())
    for name, value in (meta_changes or {}).items():
        if value is None:
            del meta[name]
        else:
            meta[name] = value
    return encode_entry(meta, frames if frames is not None else wire.encode(request))


def _write_damage(folder: Path) -> list[str]:
    """Every damaged entry under a name that sorts before the good ones; their job ids."""
    folder.mkdir(parents=True, exist_ok=True)
    damaged = []
    for name, changes in BAD_META.items():
        job = f"a-{name}"
        (folder / f"{job}.job").write_bytes(_entry(job, changes))
        damaged.append(job)
    return damaged


def test_every_metadata_field_of_the_wrong_type_sets_its_entry_aside(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    damaged = _write_damage(tmp_path)
    (tmp_path / "-dash.job").write_bytes(_entry("-dash"))  # not a job id (ids end up in file names)
    (tmp_path / "z-good.job").write_bytes(_entry("z-good"))
    (tmp_path / "z-seed.job").write_bytes(_entry("z-seed"))
    (tmp_path / "z-seed.state.json").write_text('{"state": "running", "seed": -4}')  # not a seed: a fresh one
    (tmp_path / "a-ns-text.state.json").write_text('{"state": "running", "seed": 5}')  # goes with its entry
    caplog.set_level(logging.INFO)
    entries = Journal(tmp_path).read()
    assert [entry.job_id for entry in entries] == ["z-seed", "z-good"]  # running first
    assert entries[0].running and entries[0].seed is None
    assert sorted(path.name for path in (tmp_path / "corrupt").iterdir()) == sorted(
        [f"{job}.job" for job in damaged] + ["-dash.job"])
    assert not list(tmp_path.glob("a-*"))  # state files of set-aside entries go too
    assert "accepted_ns is 'abc', not a time in ns" in caplog.text and "metadata lacks reply" in caplog.text
    assert "names seed -4, not a seed" in caplog.text


def test_a_daemon_starts_past_damaged_entries_and_resumes_the_good_ones_after_them(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "out"
    folder = _journal(out)
    damaged = _write_damage(folder)
    # Whole entries whose request is wrong: not a request, not a job request, another job's request.
    (folder / "b-frames.job").write_bytes(_entry("b-frames", frames=[b"\x00not a header"]))
    (folder / "b-status.job").write_bytes(_entry("b-status", frames=wire.encode(GetStatus(id="s"))))
    (folder / "b-other.job").write_bytes(_entry("b-other", request_job="z-good1"))
    damaged += ["b-frames", "b-status", "b-other"]
    for job in ("z-good1", "z-good2"):
        (folder / f"{job}.job").write_bytes(_entry(job))
    caplog.set_level(logging.INFO)
    with start_fake_daemon(out) as daemon, Client(daemon.zmq, timeout_s=30) as client:
        wait_for(lambda: (out / "z-good1.wav").exists() and (out / "z-good2.wav").exists(), timeout_s=20)
        wait_for(lambda: not list(folder.glob("*.job")), timeout_s=10)  # forgotten once done
        assert sorted(path.name for path in (folder / "corrupt").iterdir()) == sorted(f"{job}.job" for job in damaged)
        assert "b-other.job is unusable (its request is job 'z-good1', not 'b-other')" in caplog.text
        assert isinstance(list(client.generate("after", duration_s=0.5))[-1], Done)  # and it serves on
    assert sorted(path.name for path in out.glob("*.wav")) == ["z-good1.wav", "z-good2.wav"]


def test_a_saved_job_without_an_id_is_resumed_under_the_id_it_was_given(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with start_fake_daemon(out, models=("fake/slow",)) as daemon, Client(daemon.zmq, timeout_s=30) as client:
        stream = client.generate("x", duration_s=4.0, save=True, seed=8)  # the daemon picks its id
        job = next(iter(stream)).job
        wait_for(lambda: (_journal(out) / f"{job}.job").exists())
        daemon.stop()
    with start_fake_daemon(out, models=("fake/slow",)) as daemon, Client(daemon.zmq, timeout_s=30) as client:
        assert client.status().resumed == (job,)
        wait_for(lambda: (out / f"{job}.wav").exists(), timeout_s=20)
        wait_for(lambda: not list(_journal(out).glob("*.job")), timeout_s=10)  # not resumed again next time
    assert [path.name for path in out.glob("*.wav")] == [f"{job}.wav"]
    assert sf.info(str(out / f"{job}.wav")).duration == pytest.approx(4.0)
