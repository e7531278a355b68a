"""The cluster pieces without a cluster: a worker's stream items, stop and load errors, and the
front's retry (nothing streamed yet) or worker_lost (audio already out) on a lost worker."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from daemon_harness import fake_loader

from daemon.backend import JobContext
from daemon.cluster.backend import RayBackend
from daemon.cluster.cluster import WorkerGone
from daemon.cluster.items import (
    CheckpointItem, ChunkItem, CodesItem, EndItem, ErrorItem, EventItem, InputAudio, JobSpec, LoadSettings, ModelInfo,
    ProgressItem,
)
from daemon.cluster.worker import ModelWorker
from daemon.cluster.worker_jams import JamMeta, JamStep
from daemon.jobs import Job
from daemon.jukebox_jobs import JukeboxJob
from daemon.models.jukebox.codes_file import TopCodes, read_codes
from protocol.errors import Cancelled, WorkerLost
from protocol.events import Lyric
from protocol.messages import Continue, Generate, JukeboxSample
from protocol.params import GenerationParams


def _worker() -> ModelWorker:
    return ModelWorker("w7", LoadSettings(), loader=lambda model_id, settings: fake_loader(model_id, "cpu"),
                       node_id=lambda: "node-a")


def _spec(model: str = "fake/fast", duration_s: float = 1.0, **inputs: InputAudio) -> JobSpec:
    request = Generate(prompt="x", duration_s=duration_s)
    return JobSpec("job-1", model, request, GenerationParams(duration_s=duration_s, seed=5), seed=5, inputs=inputs)


def test_a_worker_streams_progress_and_contiguous_chunks_then_its_report() -> None:
    worker = _worker()
    assert isinstance(worker.load("fake/fast"), ModelInfo)
    items = list(worker.run(_spec(duration_s=1.0)))
    chunks = [item for item in items if isinstance(item, ChunkItem)]
    assert [chunk.offset_samples for chunk in chunks] == [0, 4000, 8000, 12000]
    assert isinstance(items[0], ProgressItem) and items[0] == ProgressItem(1, 4)
    assert isinstance(items[-1], EndItem) and ProgressItem(4, 4) in items
    assert worker.ping().models == ("fake/fast",) and worker.ping().running == ()


def test_a_stop_ends_the_job_with_cancelled_and_load_failures_are_items() -> None:
    worker = _worker()
    stream = worker.run(_spec("fake/slow", duration_s=5.0))
    assert isinstance(next(stream), ProgressItem)
    assert worker.ping().running == ("job-1",)
    assert worker.stop("job-1") and not worker.stop("no-such-job")
    rest = list(stream)
    assert isinstance(rest[-1], ErrorItem) and rest[-1].code == "cancelled"
    assert worker.load("fake/broken") == ErrorItem("model_unavailable", "fake/broken cannot be loaded: simulated out of memory")
    failed = list(worker.run(_spec("fake/crash", duration_s=2.0)))
    assert isinstance(failed[-1], ErrorItem) and failed[-1].code == "internal" and "w7" in failed[-1].message


def test_a_worker_reads_only_the_audio_sent_with_the_job() -> None:
    worker = _worker()
    sent = InputAudio(np.zeros((1, 16000), np.float32), 16000)
    request = Continue(audio="input:audio", duration_s=0.5)
    spec = JobSpec("job-2", "fake/fast", request, GenerationParams(duration_s=0.5, seed=1), seed=1,
                   inputs={"input:audio": sent})
    assert isinstance(list(worker.run(spec))[-1], EndItem)
    unknown = JobSpec("job-3", "fake/fast", Continue(audio="/etc/passwd", duration_s=0.5),
                      GenerationParams(duration_s=0.5, seed=1), seed=1)
    ended = list(worker.run(unknown))[-1]
    assert isinstance(ended, ErrorItem) and ended.code == "bad_audio"


class _FlakyCluster:
    """Two workers; the first loses its stream after `chunks_before_loss` chunks."""

    def __init__(self, chunks_before_loss: int, lose_loading: bool = False) -> None:
        self.chunks_before_loss = chunks_before_loss
        self.lose_loading = lose_loading
        self.lost: list[str] = []
        self.placed: list[str] = []
        self.released: list[str] = []

    def acquire(self, model_id: str, job_id: str, exclude: set[str]) -> tuple[str, ModelInfo]:
        worker = next(name for name in ("w0", "w1") if name not in exclude)
        self.placed.append(worker)
        if self.lose_loading and worker == "w0":
            raise WorkerGone("w0", "node-a", "died while loading")
        return worker, INFO

    def release(self, worker: str, job_id: str) -> None:
        self.released.append(worker)

    def mark_lost(self, gone: WorkerGone) -> None:
        self.lost.append(gone.worker)

    def stream(self, worker: str, spec: JobSpec, should_stop) -> Iterator[object]:
        for index in range(3):
            if worker == "w0" and index == self.chunks_before_loss:
                raise WorkerGone("w0", "node-a", "the actor died")
            yield ChunkItem(index, index * 100, np.zeros((1, 100), np.float32), 32000, "final", None)
        yield EndItem(None)


INFO = ModelInfo("fake/fast", 32000, 1, False, "float32", 1)


def _context() -> JobContext:
    return JobContext(seed=1, read_audio=lambda source: None, resolve_input=lambda path: path,  # type: ignore[arg-type,return-value]
                      progress=lambda done, total: None, should_stop=lambda: False, yield_to_higher=lambda: None)


def _job() -> Job:
    request = Generate(prompt="x", duration_s=1.0)
    return Job(id="job-9", request=request, model="fake/fast", params=request.generation_params())


def test_a_worker_lost_before_any_audio_is_retried_on_another_worker() -> None:
    cluster = _FlakyCluster(chunks_before_loss=0)
    chunks = list(RayBackend(cluster, INFO).run_job(_job(), _context()))  # type: ignore[arg-type]
    assert [chunk.offset_samples for chunk in chunks] == [0, 100, 200]
    assert cluster.placed == ["w0", "w1"] and cluster.lost == ["w0"] and cluster.released == ["w0", "w1"]


def test_a_worker_lost_while_loading_the_model_sends_the_job_to_another() -> None:
    cluster = _FlakyCluster(chunks_before_loss=3, lose_loading=True)
    chunks = list(RayBackend(cluster, INFO).run_job(_job(), _context()))  # type: ignore[arg-type]
    assert len(chunks) == 3 and cluster.placed == ["w0", "w1"] and cluster.lost == ["w0"]


def test_a_worker_lost_after_audio_went_out_ends_the_job_with_worker_lost_naming_it() -> None:
    cluster = _FlakyCluster(chunks_before_loss=2)
    stream = RayBackend(cluster, INFO).run_job(_job(), _context())  # type: ignore[arg-type]
    assert [chunk.index for chunk in (next(stream), next(stream))] == [0, 1]
    with pytest.raises(WorkerLost, match=r"worker w0 on node node-a was lost after 0\.01 s"):
        next(stream)
    assert cluster.placed == ["w0"] and cluster.released == ["w0"]


def test_without_ray_the_daemon_never_imports_it(tmp_path) -> None:
    """Ray is an optional extra: a daemon without --ray (made, and its cluster pieces' config read) loads none of it."""
    import subprocess
    import sys

    code = ("import sys\n"
            "from daemon.config import build_config\n"
            "from daemon.server.app import Daemon\n"
            f"Daemon(build_config(dict(out_dir={str(tmp_path)!r})))\n"
            "assert 'ray' not in sys.modules, 'ray imported'\n"
            "print('ok')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "ok", result.stderr[-2000:]


def test_a_stopped_job_whose_worker_never_confirms_ends_as_cancelled() -> None:
    cluster = _FlakyCluster(chunks_before_loss=1)
    context = _context()
    stopping = JobContext(seed=1, read_audio=context.read_audio, resolve_input=context.resolve_input,
                          progress=context.progress, should_stop=lambda: True, yield_to_higher=context.yield_to_higher)
    stream = RayBackend(cluster, INFO).run_job(_job(), stopping)  # type: ignore[arg-type]
    next(stream)
    with pytest.raises(Cancelled, match="did not confirm"):
        next(stream)


class _Checkpoint:
    def __init__(self) -> None:
        self.saved: dict[str, np.ndarray] | None = None

    def load(self) -> dict[str, np.ndarray] | None:
        return self.saved

    def save(self, arrays: dict[str, np.ndarray], done: int, total: int) -> None:
        self.saved = {**arrays, "progress": np.array([done, total])}


class _JukeboxCluster(_FlakyCluster):
    """w0 checkpoints a window, then dies before any audio; w1 sends codes, a word, a chunk."""

    def __init__(self) -> None:
        super().__init__(chunks_before_loss=0)
        self.specs: dict[str, JobSpec] = {}

    def stream(self, worker: str, spec: JobSpec, should_stop) -> Iterator[object]:
        self.specs[worker] = spec
        if worker == "w0":
            yield CheckpointItem({"tokens": np.arange(4)}, 1, 3)
            raise WorkerGone("w0", "node-a", "the actor died")
        yield CodesItem(TopCodes(np.array([3, 1, 2]), artist="a", model="debug/jukebox"))
        yield EventItem(Lyric(job=spec.job_id, index=0, text="hey", start_s=0.0, end_s=0.1))
        yield ChunkItem(0, 0, np.zeros((1, 100), np.float32), 44100, "preview", None)
        yield EndItem(None)


def test_a_jukebox_job_on_a_worker_keeps_its_codes_and_checkpoints_at_the_front(tmp_path) -> None:
    """Codes and checkpoints come back as items: the front writes the codes under --out and keeps the
    journal's checkpoint, and a retry after a loss resumes from the lost worker's last checkpoint."""
    cluster = _JukeboxCluster()
    checkpoint, events = _Checkpoint(), []
    context = _context()
    context = JobContext(seed=1, read_audio=context.read_audio, resolve_input=context.resolve_input,
                         progress=context.progress, should_stop=context.should_stop,
                         yield_to_higher=context.yield_to_higher, checkpoint=checkpoint, emit=events.append)
    request = JukeboxSample(duration_s=1.0, seed=1)
    job = JukeboxJob(id="jb", request=request, model="debug/jukebox", params=GenerationParams(duration_s=1.0, seed=1),
                     codes_path=tmp_path / "jb.codes.npz")
    chunks = list(RayBackend(cluster, INFO).run_job(job, context))  # type: ignore[arg-type]
    assert [chunk.stage for chunk in chunks] == ["preview"] and cluster.lost == ["w0"]
    assert cluster.specs["w0"].journaled and cluster.specs["w0"].resume is None and cluster.specs["w0"].send_codes
    resumed = cluster.specs["w1"].resume
    assert resumed is not None and resumed["tokens"].tolist() == [0, 1, 2, 3] and resumed["progress"].tolist() == [1, 3]
    kept = read_codes(tmp_path / "jb.codes.npz")
    assert kept.codes.tolist() == [3, 1, 2] and kept.artist == "a" and kept.model == "debug/jukebox"
    assert [event.text for event in events] == ["hey"]


class _JamCluster(_FlakyCluster):
    """One worker, w1, holding a jam whose steps apply the changes they carry at frame 5."""

    def __init__(self) -> None:
        super().__init__(chunks_before_loss=0)
        self.sent: list[object] = []
        self.dies_at: str | None = None
        self.calls = 0
        self.ids: set[str] = set()  # the ids the jam was placed and called under

    def acquire(self, model_id: str, job_id: str, exclude: set[str]) -> tuple[str, ModelInfo]:
        worker = next(name for name in ("w0", "w1") if name not in exclude)
        self.placed.append(worker)
        self.ids.add(job_id)
        return worker, INFO

    def call(self, worker: str, method: str, jam_id: str, op: str, *args: object) -> object:
        assert method == "jam"
        self.calls += 1
        self.ids.add(jam_id)
        if worker == "w0" or op == self.dies_at:  # w0 dies as the jam starts there
            raise WorkerGone(worker, "node-b", "the actor died")
        if op == "start":
            return JamMeta(32000, 640, 10, {"model": "fake/fast"}, 0, 0)
        if op == "step":
            changes = args[0]
            assert isinstance(changes, list)
            self.sent += [change.token for change in changes]
            block = ChunkItem(0, 0, np.ones((1, 640), np.float32), 32000, "final", None)
            return JamStep([block], [(change.token, 5) for change in changes], 640, 1280)
        return [] if op == "cancel_pending" else True


def test_a_jam_on_a_worker_keeps_its_change_tokens_at_the_front_and_a_lost_worker_is_worker_lost() -> None:
    from daemon.models.musicgen.jam.types import Change, JamSampling

    cluster = _JamCluster()
    stream = RayBackend(cluster, INFO).jam_host("jam-7").start("x", JamSampling(), seed=1,  # type: ignore[arg-type]
                                                               context_s=1.0, window_s=None)
    # w0 was lost as the jam started there (nothing heard yet): it started on w1, under its job's id both times.
    assert cluster.placed == ["w0", "w1"] and cluster.released == ["w0"] and cluster.lost == ["w0"]
    assert cluster.ids == {"jam-7"} and stream.jam_id == "jam-7"
    assert stream.sample_rate == 32000 and stream.bundle.hop_length == 640 and stream.stream_settings.chunk_frames == 10
    token = object()  # the front's inbox message: never sent, answered here when its change applies
    stream.submit(Change(sampling=(("temperature", 1.2),), token=token))
    blocks, applied = stream.step()
    assert applied == [(token, 5)] and cluster.sent == [1] and len(blocks) == 1 and blocks[0].frames == 640
    assert (stream.emitted_samples, stream.generated_samples) == (640, 1280)
    cluster.dies_at = "step"
    with pytest.raises(WorkerLost, match="w1 on node node-b was lost during the jam"):
        stream.step()
    assert cluster.lost == ["w0", "w1"]
    calls = cluster.calls
    assert stream.cancel_pending() == []  # nothing more is asked of a lost worker (each call would time out)
    stream.close()
    stream.close()
    assert cluster.released == ["w0", "w1"] and cluster.calls == calls


def test_a_worker_answers_jam_calls_it_cannot_serve_with_error_items() -> None:
    worker = _worker()
    assert worker.jam("j1", "start", "fake/fast", "x", None, 1, 1.0, None).code == "unsupported"
    assert worker.jam("j1", "step", []).code == "not_found"
    assert worker.jam("j1", "__init__").code == "internal"  # only the jam operations are callable
