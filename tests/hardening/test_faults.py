"""Faults: out of memory and crashes inside the real engine, a vanished client, a full disk."""

from __future__ import annotations

import errno
import gc
import subprocess
import uuid
import weakref
from pathlib import Path

import pytest
import soundfile
import torch
from daemon_harness import DaemonThread, OscPeer, fake_loader, make_config, wait_for

import daemon.audio.io as audio_io
from clients import Client
from protocol.messages import Done, Error, Progress


def _backend(daemon: DaemonThread):
    return daemon.daemon._pool.load("debug/musicgen")


@pytest.mark.parametrize("fault, code", [
    (lambda: torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)"), "out_of_memory"),
    (lambda: RuntimeError("simulated kernel failure"), "internal"),
])
def test_a_fault_inside_the_engine_ends_the_job_releases_memory_and_the_next_job_runs(
        debug_daemon: DaemonThread, fault, code: str) -> None:
    engine = _backend(debug_daemon).engine.decoder
    held: list[weakref.ref] = []
    real_step = engine.step

    def failing_step(cache, column, position):
        # What a real OOM leaves behind: a big tensor alive in a frame of the traceback.
        scratch = torch.empty(16 * 1024 * 1024, dtype=torch.float32)  # 64 MiB
        held.append(weakref.ref(scratch))
        raise fault()

    engine.step = failing_step
    try:
        with Client(debug_daemon.zmq, timeout_s=30) as client:
            events = list(client.generate("x", duration_s=1.0, seed=1))
    finally:
        del engine.step  # back to the class's method
    assert engine.step == real_step
    assert isinstance(events[-1], Error) and events[-1].code == code, events[-1]
    assert sum(isinstance(e, (Done, Error)) for e in events) == 1
    gc.collect()
    assert held and held[0]() is None, "the failed job's tensors are still referenced"
    assert engine.live_caches == 0, "the failed window's KV cache was not freed"
    with Client(debug_daemon.zmq, timeout_s=30) as client:
        assert isinstance(list(client.generate("x", duration_s=0.5, seed=1))[-1], Done)
        assert client.status().running == 0


def test_a_vanished_client_mid_stream_leaves_others_unaffected_and_nothing_behind(debug_daemon: DaemonThread) -> None:
    gone = Client(debug_daemon.zmq, timeout_s=30)
    stream = gone.generate("x", duration_s=60.0, job="vanishing")
    for event in stream:
        if isinstance(event, Progress):
            break
    gone.close()  # no cancel sent: the socket just disappears
    with Client(debug_daemon.zmq, timeout_s=30) as other:
        wait_for(lambda: "vanishing" not in other.status().jobs, timeout_s=10)
        assert isinstance(list(other.generate("x", duration_s=0.5, job="after-vanish"))[-1], Done)
        status = other.status()
        assert status.running == 0 and status.queued == 0
    assert _backend(debug_daemon).engine.live_caches == 0


class _FullDisk:
    """soundfile as seen by daemon.audio.io, except that the Nth write on runs out of space mid-file."""

    def __init__(self, fail_from_call: int) -> None:
        self.calls = 0
        self._fail_from_call = fail_from_call

    def write(self, handle, *args, **kwargs):
        self.calls += 1
        if self.calls >= self._fail_from_call:
            handle.write(b"RIFF\x00\x00")  # a few bytes made it to the disk, as they do
            raise OSError(errno.ENOSPC, "No space left on device")
        return soundfile.write(handle, *args, **kwargs)

    def __getattr__(self, name: str):
        return getattr(soundfile, name)


def _out_files(out: Path) -> list[Path]:
    return sorted(path for path in out.rglob("*") if path.is_file())


def _check_disk_full_behaviour(daemon: DaemonThread, out: Path) -> None:
    peer = OscPeer(daemon.osc_port)
    try:
        peer.send("/riffd/generate", "x", 10.0, "job", "overflow", "save", 1)
        address, args = peer.receive_until("/riffd/error", "overflow")[-1]
        assert args[1] == "output_error" and "No space left" in args[2], args
        files = _out_files(out)
        assert not [f for f in files if f.name.endswith(".part")], files  # temporary files removed
        assert not (out / "overflow.wav").exists()  # nothing under the final name
        for path in files:  # every chunk file that exists is whole
            assert soundfile.info(str(path)).frames > 0
    finally:
        peer.close()
    # Alive: a job that writes nothing completes.
    with Client(daemon.zmq, timeout_s=20) as client:
        assert isinstance(list(client.generate("x", duration_s=0.5, job="no-files"))[-1], Done)


def test_a_full_output_folder_by_injected_enospc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    monkeypatch.setattr(audio_io, "sf", _FullDisk(fail_from_call=4))
    with DaemonThread(make_config(out, models=("fake/fast",)), loader=fake_loader).start() as daemon:
        _check_disk_full_behaviour(daemon, out)


@pytest.fixture
def tiny_tmpfs(tmp_path: Path):
    mount_point = tmp_path / "out"
    mount_point.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", f"riffd-{uuid.uuid4().hex[:8]}",
                             str(mount_point)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({result.stderr.strip()}); ENOSPC is covered by injection")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_a_full_output_folder_on_a_real_tiny_tmpfs(tiny_tmpfs: Path) -> None:
    # 96 KiB: six 0.25 s chunk files of the fake model (16 kB each) and it is full.
    with DaemonThread(make_config(tiny_tmpfs, models=("fake/fast",)), loader=fake_loader).start() as daemon:
        _check_disk_full_behaviour(daemon, tiny_tmpfs)
