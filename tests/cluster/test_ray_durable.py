"""Durable work on a cluster (issues 18 and 19): a --ray front killed mid-upsampling and started again
on the same folder resumes the Jukebox render on a worker from the checkpoint the first worker sent
back, and its audio equals an uninterrupted render's. Two front starts make it ~25 s: it runs when
RIFFD_SLOW_RAY_TESTS=1 (the checkpoints' relay itself is tested in test_worker_unit.py every run)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from daemon_harness import free_port
from local_ray import LocalRay

from clients import Client
from daemon.child import DaemonChild
from protocol.messages import Done, Progress

pytestmark = pytest.mark.skipif(os.environ.get("RIFFD_SLOW_RAY_TESTS") != "1",
                                reason="set RIFFD_SLOW_RAY_TESTS=1 to restart a --ray front mid-render (~25 s)")

LABELS = dict(artist="Zac Brown Band", genres="Country", lyrics="Chicken fried")
PIECE_S = 8192 / 44100  # debug/jukebox: 64 top-level tokens, then 256 middle and 1024 bottom ones
BOTTOM_FROM = 64 + 256  # progress (tokens over the levels) where the bottom level starts


def test_a_killed_ray_front_resumes_a_jukebox_render_on_a_worker_from_its_checkpoint(
        tmp_path: Path, riffd_cache: Path, local_ray: LocalRay) -> None:
    out = tmp_path / "out"
    ports = [str(free_port()) for _ in range(3)]
    args = ["--model", "debug/jukebox", "--device", "cpu", "--out", str(out), "--cache-dir", str(riffd_cache),
            "--osc-port", ports[0], "--zmq-port", ports[1], "--pub-port", ports[2], "--log-level", "INFO",
            "--ray", local_ray.address, "--ray-workers", "1"]
    front = DaemonChild(args)
    try:
        with Client(front.zmq, timeout_s=120) as client:
            stream = client.jukebox_sample(PIECE_S, seed=11, model="debug/jukebox", job="night", save=True, **LABELS)
            for event in stream:
                if isinstance(event, Progress) and event.done >= BOTTOM_FROM + 4 * 32:  # into the bottom level
                    break
            os.kill(front.process.pid, signal.SIGKILL)  # its workers go with it (Ray ends a dead driver's actors)
            front.process.wait(10)
            with np.load(out / ".riffd-state" / "journal" / "night.ckpt.npz") as checkpoint:
                saved = int(checkpoint["progress"][0])
            assert saved > BOTTOM_FROM  # the worker's checkpoints reached the front's journal

            front = DaemonChild(args)
            assert any(f"from its checkpoint at {saved} of" in line for line in front.log if "resumed job night" in line)
            rest = list(stream)
            progress = [event for event in rest if isinstance(event, Progress)]
            assert isinstance(rest[-1], Done) and progress and progress[0].done > saved  # not sampled again
            reference = list(client.jukebox_sample(PIECE_S, seed=11, model="debug/jukebox", job="ref", save=True,
                                                   **LABELS))
            assert isinstance(reference[-1], Done)
    finally:
        front.kill()
    resumed, _ = sf.read(out / "night.wav", dtype="float32")
    uninterrupted, _ = sf.read(out / "ref.wav", dtype="float32")
    np.testing.assert_array_equal(resumed, uninterrupted)
    with np.load(out / "night.codes.npz") as night, np.load(out / "ref.codes.npz") as ref:
        np.testing.assert_array_equal(night["top"], ref["top"])
