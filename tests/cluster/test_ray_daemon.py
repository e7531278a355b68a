"""`riffd serve --ray` on a local Ray cluster the tests start: jobs over ZeroMQ and OSC served by
two workers, audio equal to the in-process daemon's, a worker killed mid-job, a failed load, and
Jukebox on a worker (a primed sample and an upsample of its codes: the prime travels as samples,
the codes come back to the front, written under --out, and go out again as an array)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from daemon_harness import DaemonThread, OscDump, oscsend, wait_for

from clients import Client
from daemon.audio.types import Audio
from protocol.messages import Chunk, Done, Error, Progress, Started
from protocol.params import GenerationParams


def _worker_lines(client: Client) -> dict[str, dict[str, str]]:
    """Status's worker lines as {name: {field: value}}."""
    lines = {}
    for line in client.status().workers:
        name, *fields = line.split()
        lines[name] = dict(field.split("=", 1) for field in fields)
    return lines


@pytest.fixture(scope="module")
def reference(riffd_cache: Path):
    """The in-process daemon's audio for a prompt and seed: the same backend, loaded here."""
    from daemon.models.registry import load_backend

    backend = load_backend("debug/musicgen", device="cpu", cache_dir=riffd_cache, engine="float32", max_batch=1)

    def render(prompt: str | None, duration_s: float, seed: int, audio_prompt: Audio | None = None) -> np.ndarray:
        chunks = list(backend.stream(prompt, GenerationParams(duration_s=duration_s, seed=seed), batched=True,
                                     label="reference", audio_prompt=audio_prompt))
        return np.concatenate([chunk.audio for chunk in chunks], axis=1)

    return render


def _collect(endpoint: str, prompt: str, duration_s: float, seed: int, into: dict, first_chunk: threading.Event | None = None,
             job: str | None = None) -> None:
    """Run one job over its own ZeroMQ client; keep its events."""
    with Client(endpoint, timeout_s=120) as client:
        events = []
        for event in client.generate(prompt, duration_s=duration_s, seed=seed, chunks=True, job=job):
            events.append(event)
            if isinstance(event, Chunk) and first_chunk is not None:
                first_chunk.set()
        into[seed] = events


def _chunks_audio(events: list) -> np.ndarray:
    """The job's chunks joined, checking they are contiguous from sample 0."""
    chunks = [event for event in events if isinstance(event, Chunk)]
    offset = 0
    for index, chunk in enumerate(chunks):
        assert chunk.index == index and chunk.offset_samples == offset, (index, chunk.index, chunk.offset_samples)
        offset += chunk.frames
    return np.concatenate([chunk.audio for chunk in chunks], axis=1)


def test_zmq_and_osc_jobs_run_on_both_workers_with_the_in_process_audio(ray_daemon: DaemonThread, reference) -> None:
    with Client(ray_daemon.zmq) as client:
        workers = _worker_lines(client)
        assert set(workers) == {"w0", "w1"} and all(w["health"] == "ok" for w in workers.values())
        assert all(re.fullmatch(r"\d+", w["pid"]) and w["node"] != "?" for w in workers.values())
        # --model models are loaded on every worker at start.
        assert all(w["models"] == "debug/musicgen" for w in workers.values()), workers
    results: dict[int, list] = {}
    seen: set[tuple[str, str]] = set()  # (worker, job) pairs status showed while the jobs ran
    watching = threading.Event()

    def watch() -> None:
        with Client(ray_daemon.zmq) as client:
            while not watching.is_set():
                seen.update((name, w["jobs"]) for name, w in _worker_lines(client).items() if w["jobs"] != "-")
                time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    # Two jobs at once, one slot per worker: one on each.
    threads = [threading.Thread(target=_collect, args=(ray_daemon.zmq, "ray pad", 4.0, seed, results, None, f"z{seed}"))
               for seed in (11, 12)]
    for thread in threads:
        thread.start()
    url = f"osc.udp://127.0.0.1:{ray_daemon.osc_port}"
    with OscDump() as dump:
        oscsend("/riffd/subscribe", "i", dump.port, url=url)
        oscsend("/riffd/generate", "sfsiss", "ray osc", 2.0, "seed", 13, "job", "ray-osc", url=url)
        done = dump.wait_for(lambda line: line.address in ("/riffd/done", "/riffd/error") and line.args[0] == "ray-osc",
                             timeout_s=120)
    for thread in threads:
        thread.join(120)
    watching.set()
    watcher.join()
    assert done is not None and done.address == "/riffd/done", done
    # The front daemon wrote the file under --out, from the chunks the worker streamed.
    saved, rate = sf.read(done.args[1], dtype="float32", always_2d=True)
    assert rate == 32000 and saved.shape == (64000, 1)
    np.testing.assert_allclose(saved.T, reference("ray osc", 2.0, 13), atol=1e-4)  # through a 16-bit file
    for seed in (11, 12):
        events = results[seed]
        assert isinstance(events[-1], Done), events[-1]
        assert any(isinstance(event, Started) and event.seed == seed for event in events)
        audio = _chunks_audio(events)
        assert audio.shape == (1, 128000)
        # Same weights, seed and engine: the cluster's audio is the in-process daemon's.
        np.testing.assert_array_equal(audio, reference("ray pad", 4.0, seed))
    # Both workers served: each showed one of the two ZeroMQ jobs while they ran together.
    assert {name for name, job in seen if job in ("z11", "z12")} == {"w0", "w1"}, seen


def test_a_worker_killed_mid_job_gives_worker_lost_and_the_daemon_serves_on(ray_daemon: DaemonThread) -> None:
    results: dict[int, list] = {}
    first_chunk = threading.Event()
    # Two long jobs take both workers; a third waits in the front's queue.
    victim = threading.Thread(target=_collect, args=(ray_daemon.zmq, "long", 40.0, 21, results, first_chunk, "victim"))
    victim.start()
    assert first_chunk.wait(60)
    others = [threading.Thread(target=_collect, args=(ray_daemon.zmq, "other", duration_s, seed, results))
              for seed, duration_s in ((22, 8.0), (23, 2.0))]
    for thread in others:
        thread.start()
    with Client(ray_daemon.zmq) as client:
        wait_for(lambda: any(w["jobs"] == "victim" for w in _worker_lines(client).values()), timeout_s=30)
        name, line = next((n, w) for n, w in _worker_lines(client).items() if w["jobs"] == "victim")
        os.kill(int(line["pid"]), signal.SIGKILL)
        victim.join(60)
        for thread in others:
            thread.join(120)
        ended = results[21][-1]
        assert isinstance(ended, Error) and ended.code == "worker_lost", ended
        assert name in ended.message, ended.message
        # Nothing queued was lost: both other jobs ran to the end on the worker left (or the restarted one).
        for seed, frames in ((22, 8 * 32000), (23, 2 * 32000)):
            assert isinstance(results[seed][-1], Done), results[seed][-1]
            assert _chunks_audio(results[seed]).shape == (1, frames)
        # Ray restarts the worker's process: it rejoins (a new pid) with the --model model loaded again.
        wait_for(lambda: _worker_lines(client)[name]["health"] == "ok"
                 and _worker_lines(client)[name]["pid"] != line["pid"]
                 and _worker_lines(client)[name]["models"] == "debug/musicgen", timeout_s=60, interval_s=0.5)
        rendered = client.generate("after", duration_s=1.0, seed=24).collect()
        assert rendered.audio.shape == (1, 32000)


def test_a_model_that_fails_to_load_on_a_worker_is_an_error_event(ray_daemon: DaemonThread, tmp_path: Path) -> None:
    broken = Path(os.environ.get("TMPDIR", "/tmp")) / f"riffd-broken-{os.getpid()}"
    broken.mkdir(exist_ok=True)
    try:
        (broken / "config.json").write_text('{"model_type": "musicgen", "broken": ')
        with Client(ray_daemon.zmq) as client:
            for model, code in ((str(broken), "model_unavailable"), ("debug/no-such-preset", "unknown_model")):
                events = list(client.generate("x", duration_s=1.0, model=model))
                assert isinstance(events[-1], Error) and events[-1].code == code, events[-1]
                if code == "model_unavailable":  # the worker's own failure, named
                    assert "could not load" in events[-1].message and re.search(r"\bw[01]\b", events[-1].message)
            # The daemon serves on.
            assert client.generate("fine", duration_s=0.5, seed=3).collect().audio.shape == (1, 16000)
    finally:
        shutil.rmtree(broken, ignore_errors=True)


def test_a_continuation_reads_its_file_at_the_front_and_load_unload_act_on_the_cluster(
        ray_daemon: DaemonThread, reference) -> None:
    rng = np.random.default_rng(3)
    region = (0.1 * rng.standard_normal((1, 16000))).astype(np.float32)
    path = Path(tempfile.gettempdir()) / f"riffd-ray-region-{os.getpid()}.wav"
    sf.write(path, region.T, 16000, subtype="FLOAT")
    try:
        with Client(ray_daemon.zmq) as client:
            # The path is the front's: the worker gets the samples (it could not read this file elsewhere).
            rendered = client.continue_(str(path), duration_s=1.0, seed=7).collect()
            expected = reference(None, 1.0, 7, audio_prompt=Audio(region, 16000))
            np.testing.assert_array_equal(rendered.audio, expected)
            client.unload("debug/musicgen")
            assert all(w["models"] == "-" for w in _worker_lines(client).values())
            client.load("debug/musicgen")
            assert sorted(w["models"] for w in _worker_lines(client).values()) == ["-", "debug/musicgen"]
    finally:
        path.unlink(missing_ok=True)


def test_status_lists_the_models_a_worker_up_holds_now(ray_daemon: DaemonThread) -> None:
    with Client(ray_daemon.zmq, timeout_s=120) as client:
        client.load("debug/musicgen-stereo")  # on demand: on one worker
        assert "debug/musicgen-stereo" in client.status().models
        name, line = next((n, w) for n, w in _worker_lines(client).items()
                          if "debug/musicgen-stereo" in w["models"].split(","))
        os.kill(int(line["pid"]), signal.SIGKILL)
        # Restarted, the worker holds the --model model again, not the one loaded on demand: status
        # stops listing that one (the front's pool still keeps its stand-in until its keep-alive).
        wait_for(lambda: _worker_lines(client)[name]["health"] == "ok"
                 and _worker_lines(client)[name]["pid"] != line["pid"]
                 and _worker_lines(client)[name]["models"] == "debug/musicgen", timeout_s=60, interval_s=0.5)
        held = {model for w in _worker_lines(client).values() for model in w["models"].split(",") if model != "-"}
        assert held == {"debug/musicgen"}
        assert client.status().models == ("debug/musicgen",) and client.models().loaded == ("debug/musicgen",)
        # A job for it loads it again, and it is listed again.
        assert client.generate("again", duration_s=0.5, seed=2, model="debug/musicgen-stereo").collect().audio.shape \
            == (2, 16000)
        assert set(client.status().models) == {"debug/musicgen", "debug/musicgen-stereo"}
        client.unload("debug/musicgen-stereo")


JUKEBOX_PIECE_S = 16384 / 44100  # one top-level window of debug/jukebox: about a second of CPU per job
JUKEBOX_LABELS = dict(artist="Zac Brown Band", genres="Country", lyrics="Chicken fried, cold beer on a Friday night")


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
        sampled = list(client.jukebox_sample(JUKEBOX_PIECE_S, seed=7, model="debug/jukebox", job="rjb", prime=prime,
                                             sample_rate=22050, save=True, **JUKEBOX_LABELS))
        assert isinstance(sampled[-1], Done), sampled[-1]
        # Progress comes while the top level is sampled, before any audio (not only beside chunks).
        first_chunk = next(i for i, event in enumerate(sampled) if isinstance(event, Chunk))
        assert any(isinstance(event, Progress) for event in sampled[:first_chunk])
        upsampled = list(client.jukebox_upsample("rjb", seed=5, model="debug/jukebox", job="rjb-up"))
        assert isinstance(upsampled[-1], Done), upsampled[-1]
        workers = {line.split()[0]: line for line in client.status().workers}
    assert any("debug/jukebox" in line for line in workers.values()), workers

    controls = JukeboxControls(seed=7, **JUKEBOX_LABELS)
    want = list(in_process.sample(controls, JUKEBOX_PIECE_S, prime=Audio(prime, 22050)))
    np.testing.assert_allclose(_stage(sampled, "preview"), _joined(want, "preview"), atol=1e-5)
    np.testing.assert_allclose(_stage(sampled, "final"), _joined(want, "final"), atol=1e-5)
    # The worker's codes came back: the front kept them under --out, labels beside them.
    with np.load(out / "rjb.codes.npz") as kept:
        codes, artist = kept["top"], str(kept["artist"])
    assert artist == JUKEBOX_LABELS["artist"] and codes.shape == (128,)
    # The upsample got those codes as an array (the worker never sees the front's folder).
    again = list(in_process.upsample(JukeboxControls(seed=5, **JUKEBOX_LABELS), codes))
    np.testing.assert_allclose(_stage(upsampled, "preview"), _stage(sampled, "preview"), atol=1e-6)
    np.testing.assert_allclose(_stage(upsampled, "final"), _joined(again, "final"), atol=1e-5)


def _jam_audio(jam, into: list[np.ndarray], until_samples: int | None = None):
    """Read a jam's chunks (contiguous from 0) until `until_samples` are in, or to its end (its done event)."""
    for event in jam:
        if isinstance(event, Chunk):
            assert event.offset_samples == sum(block.shape[1] for block in into), "chunks are contiguous"
            into.append(event.audio)
            if until_samples is not None and sum(block.shape[1] for block in into) >= until_samples:
                return None
        elif isinstance(event, (Done, Error)):
            return event
    raise AssertionError("the jam's stream ended without done")


def test_a_jam_runs_on_a_worker_with_the_in_process_stream_its_changes_and_snapshots(
        ray_daemon: DaemonThread, riffd_cache: Path) -> None:
    from daemon.models.musicgen.jam.state import read_identity
    from daemon.models.musicgen.jam.types import JamSampling
    from daemon.models.registry import load_backend
    from protocol.messages import Applied, Snapshot

    rate, hop = 32000, 640
    with Client(ray_daemon.zmq, timeout_s=60) as client:
        # 1 s windows: the jam slides on the worker (every 0.7 s) while the front paces it.
        jam = client.jam("ray jam", seed=7, context_s=0.3, window_s=1.0, duration_s=2.5)
        blocks: list[np.ndarray] = []
        assert _jam_audio(jam, blocks, until_samples=rate // 2) is None
        # Placed like a job, under its job's id: the worker's jobs name it as the front's do.
        status = client.status()
        placed = [line.split("jobs=")[1] for line in status.workers if not line.endswith("jobs=-")]
        assert placed == list(status.jobs) and placed[0].startswith("jam-"), (placed, status.jobs)
        snapshot = jam.snapshot("ray-jam")
        assert isinstance(snapshot, Snapshot) and Path(snapshot.path).is_file()
        applied = jam.set(temperature=1.4)
        assert isinstance(applied, Applied) and applied.request == "jam_set"
        done = _jam_audio(jam, blocks)
        assert isinstance(done, Done) and done.frames == round(2.5 * rate), done
        # The snapshot the worker captured was written by the front, under --out/jams, and resumes on a worker.
        assert read_identity(Path(snapshot.path))["model"] == "debug/musicgen"
        resumed: list[np.ndarray] = []
        assert isinstance(_jam_audio(client.jam("", resume="ray-jam", duration_s=0.3), resumed), Done)
        assert sum(block.shape[1] for block in resumed) == round(0.3 * rate)
        assert all(w["jobs"] == "-" for w in _worker_lines(client).values())  # the jams' places are freed
    audio = np.concatenate(blocks, axis=1)
    # The same jam in this process, stepped without pacing: the same samples until shortly before
    # the change's frame (the delay pattern samples the 3 frames before it with it, and the codec's
    # lookahead holds 2402 samples back).
    musicgen = load_backend("debug/musicgen", device="cpu", cache_dir=riffd_cache, engine="float32", max_batch=1)
    defaults = GenerationParams()
    stream = musicgen.jam_host().start("ray jam", JamSampling(defaults.temperature, defaults.top_k, defaults.top_p,
                                                              defaults.guidance_scale), seed=7, context_s=0.3,
                                       window_s=1.0)
    same = applied.offset_samples - 4 * hop - 2402
    expected = []
    while sum(block.frames for block in expected) < same:
        expected += stream.step()[0]
    stream.close()
    assert same > rate // 2
    np.testing.assert_array_equal(audio[:, :same], np.concatenate([b.audio for b in expected], axis=1)[:, :same])


def test_a_worker_killed_before_any_audio_of_a_jukebox_sketch_is_rerun_on_the_other_without_the_client_noticing(
        ray_daemon: DaemonThread, in_process) -> None:
    """A sketch streams no audio while its top level is sampled: its worker killed then, the job runs
    again on the other worker (resuming from the checkpoint it sent, when one came) and ends well."""
    from daemon.models.jukebox.backend import JukeboxControls

    duration_s = 4 * 16384 / 44100  # 512 top-level tokens: about a second of sampling before any audio
    events: list = []
    killed_at = 0  # events seen when the worker was killed
    with Client(ray_daemon.zmq, timeout_s=120) as client:
        # Saved: journaled, so the lost worker's checkpoints are at the front for the re-run to resume from.
        for event in client.jukebox_sample(duration_s, seed=13, upsample=False, save=True, model="debug/jukebox", job="rerun",
                                           **JUKEBOX_LABELS):
            events.append(event)
            # Past the first window (128 tokens, then 16 a window): a checkpoint came back before it.
            if isinstance(event, Progress) and not killed_at and event.done >= 160:
                assert not any(isinstance(seen, Chunk) for seen in events)
                line = next(w for w in _worker_lines(client).values() if w["jobs"] == "rerun")
                os.kill(int(line["pid"]), signal.SIGKILL)
                killed_at = len(events)
    assert killed_at and isinstance(events[-1], Done), events[-1]
    # Resumed from a checkpoint on the other worker: its progress goes on (a window at most is sampled again).
    before = [event.done for event in events[:killed_at] if isinstance(event, Progress)]
    after = [event.done for event in events[killed_at:] if isinstance(event, Progress)]
    assert after and min(after) >= before[-1] - 16, (before, after)
    want = list(in_process.sample(JukeboxControls(seed=13, **JUKEBOX_LABELS), duration_s, upsample=False))
    np.testing.assert_allclose(_stage(events, "final"), _joined(want, "final"), atol=1e-5)
