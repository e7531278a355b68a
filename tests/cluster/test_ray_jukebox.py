"""Jukebox on a cluster worker: a primed sample and an upsample of its codes over ZeroMQ through the
--ray daemon give the in-process backend's audio for the same seeds; the prime travels as samples,
the codes come back to the front (written under --out) and go out again as an array."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from daemon_harness import DaemonThread

from clients import Client
from daemon.audio.types import Audio
from protocol.messages import Chunk, Done, Progress

PIECE_S = 16384 / 44100  # one top-level window of debug/jukebox: about a second of CPU per job
LABELS = dict(artist="Zac Brown Band", genres="Country", lyrics="Chicken fried, cold beer on a Friday night")


@pytest.fixture(scope="module")
def in_process(riffd_cache: Path):
    """debug/jukebox loaded here, as the in-process daemon loads it."""
    from daemon.models.registry import load_backend

    return load_backend("debug/jukebox", device="cpu", cache_dir=riffd_cache, engine="float32")


def _stage(events: list, stage: str) -> np.ndarray:
    chunks = [event for event in events if isinstance(event, Chunk) and event.stage == stage]
    assert [chunk.index for chunk in chunks] == list(range(len(chunks))) and chunks, stage
    offsets = np.cumsum([0] + [chunk.frames for chunk in chunks[:-1]])
    assert [chunk.offset_samples for chunk in chunks] == offsets.tolist()
    return np.concatenate([chunk.audio for chunk in chunks], axis=1)


def _joined(chunks, stage: str) -> np.ndarray:
    return np.concatenate([chunk.audio for chunk in chunks if chunk.stage == stage], axis=1)


def test_a_primed_jukebox_sample_and_its_upsample_run_on_a_worker_with_the_in_process_audio(
        ray_daemon: DaemonThread, in_process) -> None:
    from daemon.models.jukebox.backend import JukeboxControls

    prime = (0.1 * np.random.default_rng(4).standard_normal((1, 2048))).astype(np.float32)
    out = ray_daemon.config.out_dir.resolve()
    with Client(ray_daemon.zmq, timeout_s=120) as client:
        sampled = list(client.jukebox_sample(PIECE_S, seed=7, model="debug/jukebox", job="rjb", prime=prime,
                                             sample_rate=22050, save=True, **LABELS))
        assert isinstance(sampled[-1], Done), sampled[-1]
        # Progress comes while the top level is sampled, before any audio (not only beside chunks).
        first_chunk = next(i for i, event in enumerate(sampled) if isinstance(event, Chunk))
        assert any(isinstance(event, Progress) for event in sampled[:first_chunk])
        upsampled = list(client.jukebox_upsample("rjb", seed=5, model="debug/jukebox", job="rjb-up"))
        assert isinstance(upsampled[-1], Done), upsampled[-1]
        workers = {line.split()[0]: line for line in client.status().workers}
    assert any("debug/jukebox" in line for line in workers.values()), workers

    controls = JukeboxControls(seed=7, **LABELS)
    want = list(in_process.sample(controls, PIECE_S, prime=Audio(prime, 22050)))
    np.testing.assert_allclose(_stage(sampled, "preview"), _joined(want, "preview"), atol=1e-5)
    np.testing.assert_allclose(_stage(sampled, "final"), _joined(want, "final"), atol=1e-5)
    # The worker's codes came back: the front kept them under --out, labels beside them.
    with np.load(out / "rjb.codes.npz") as kept:
        codes, artist = kept["top"], str(kept["artist"])
    assert artist == LABELS["artist"] and codes.shape == (128,)
    # The upsample got those codes as an array (the worker never sees the front's folder).
    again = list(in_process.upsample(JukeboxControls(seed=5, **LABELS), codes))
    np.testing.assert_allclose(_stage(upsampled, "preview"), _stage(sampled, "preview"), atol=1e-6)
    np.testing.assert_allclose(_stage(upsampled, "final"), _joined(again, "final"), atol=1e-5)
