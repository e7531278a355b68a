"""A model resident on the cluster, as the front daemon's scheduler sees it: a `MusicBackend` whose
jobs run on a worker and whose chunks come back as the worker decodes them."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from daemon.audio.types import AudioChunk
from daemon.backend import JobContext, StreamReport
from daemon.cluster.cluster import RayCluster, WorkerGone
from daemon.cluster.items import (
    CheckpointItem, ChunkItem, CodesItem, EndItem, ErrorItem, EventItem, InputAudio, JobSpec, ModelInfo, ProgressItem,
)
from daemon.jobs import Job
from daemon.jukebox_jobs import CODES_SUFFIXES, JukeboxJob
from protocol.audio_ref import AudioSource
from protocol.errors import Cancelled, OutputError, RiffdError, Unsupported, WorkerLost
from protocol.messages import Continue, Generate, JukeboxRequest, JukeboxSample, JukeboxUpsample

if TYPE_CHECKING:
    from daemon.cluster.jam import RemoteJamHost
    from daemon.models.jukebox.codes_file import TopCodes

log = logging.getLogger(__name__)

#: The request fields that name audio inputs; the front reads them and sends the samples.
_AUDIO_FIELDS: dict[type, tuple[str, ...]] = {Generate: ("audio_prompt", "melody"), Continue: ("audio",),
                                               JukeboxSample: ("prime",)}


class RayBackend:
    """`model_id` on the cluster: placement, the job's stream, and retry or `worker_lost` on a loss."""

    def __init__(self, cluster: RayCluster, info: ModelInfo) -> None:
        self._cluster = cluster
        self.model_id = info.model_id
        self.sample_rate = info.sample_rate
        self.audio_channels = info.audio_channels
        self.supports_melody = info.supports_melody
        self.engine_name = info.engine

    def run_job(self, job: Job, context: JobContext) -> Generator[AudioChunk, None, StreamReport | None]:
        request = job.request
        if not isinstance(request, (Generate, Continue, JukeboxRequest)):
            raise Unsupported(f"{request.TYPE} jobs run in the front daemon's process only; with --ray, riffd serves "
                              "generate, continue and Jukebox jobs")
        spec = self._spec(job, context)
        tried: set[str] = set()
        while True:
            if context.checkpoint is not None:  # a retry resumes from what the lost worker checkpointed
                spec = dataclasses.replace(spec, resume=context.checkpoint.load())
            try:
                worker, _ = self._cluster.acquire(self.model_id, job.id, tried)
            except WorkerGone as gone:  # lost while loading the model for this job: try another
                self._cluster.mark_lost(gone)
                tried.add(gone.worker)
                continue
            streamed_frames = 0
            try:
                # Closed at once when this job's stream is (a stop): the worker is told to stop.
                with contextlib.closing(self._cluster.stream(worker, spec, context.should_stop)) as items:
                    for item in items:
                        if isinstance(item, ChunkItem):
                            streamed_frames += int(item.audio.shape[-1])
                            yield AudioChunk(item.index, item.offset_samples, item.audio, item.sample_rate, item.stage,
                                             item.beat)
                        elif isinstance(item, ProgressItem):
                            context.progress(item.done, item.total)
                        elif isinstance(item, CodesItem):
                            _keep_codes(job, item)
                        elif isinstance(item, CheckpointItem):
                            if context.checkpoint is not None:
                                context.checkpoint.save(item.arrays, item.done, item.total)
                        elif isinstance(item, EventItem):
                            if context.emit is not None:
                                context.emit(item.event)
                        elif isinstance(item, ErrorItem):
                            raise (Cancelled(item.message) if item.code == Cancelled.code
                                   else RiffdError(item.message, code=item.code))
                        elif isinstance(item, EndItem):
                            return StreamReport(**item.report) if item.report is not None else None  # type: ignore[arg-type]
                raise WorkerLost(f"{worker}'s stream of job {job.id} ended without a result")
            except WorkerGone as gone:
                self._cluster.mark_lost(gone)
                tried.add(worker)
                if context.should_stop():  # it was being stopped anyway: the stop's reason is the job's end
                    raise Cancelled(f"job {job.id} stopped ({gone.worker} did not confirm: {gone.reason})") from None
                if streamed_frames > 0:
                    raise WorkerLost(f"cluster worker {gone.worker} on node {gone.node[:12] or '?'} was lost after "
                                     f"{streamed_frames / self.sample_rate:.2f} s of this job's audio "
                                     f"({gone.reason})") from None
                log.warning("job %s: worker %s lost before any audio (%s); running it on another worker", job.id,
                            gone.worker, gone.reason)
            finally:
                self._cluster.release(worker, job.id)

    @property
    def resident(self) -> bool:
        """Whether a worker that is up holds the model now: a restarted worker comes back with the
        --model models only, and a lost one with none. Status lists the model only then; a job for
        it loads it again wherever it runs."""
        return self.model_id in self._cluster.resident()

    def concurrent_jobs(self, job: Job) -> int:
        """The model's slots on every worker that is up (a Jukebox has one per worker); a jam: one."""
        if isinstance(job.request, (Generate, Continue, JukeboxRequest)):
            return self._cluster.slots(self.model_id)
        return 1

    def batched_jobs(self) -> tuple[str, ...]:
        return self._cluster.shared_jobs(self.model_id)

    def jam_host(self, job_id: str) -> RemoteJamHost:
        """Jam `job_id`'s model side on a worker, placed there under that id; the front keeps its job
        (pacing, changes, files)."""
        from daemon.cluster.jam import RemoteJamHost

        return RemoteJamHost(self._cluster, self.model_id, job_id)

    def release(self) -> None:
        """The front's pool dropped this model (unload, keep-alive): the workers drop it too."""
        self._cluster.unload(self.model_id)

    def _spec(self, job: Job, context: JobContext) -> JobSpec:
        """The job for a worker: its inputs read here (the worker cannot read this machine's files)
        and sent as samples or codes, audio under keys that replace it in the request."""
        request = job.request
        inputs: dict[str, InputAudio] = {}
        replaced: dict[str, Any] = {}
        codes = None
        names = _AUDIO_FIELDS.get(type(request), ())
        if isinstance(request, JukeboxUpsample):
            codes = _upsample_codes(job, context)
            names = () if codes is not None else ("source",)
        for name in names:
            source: AudioSource | None = getattr(request, name)
            audio = context.read_audio(source)
            if audio is not None:
                key = f"input:{name}"
                inputs[key] = InputAudio(audio.samples, audio.sample_rate)
                replaced[name] = key
        send_codes = isinstance(job, JukeboxJob) and job.codes_path is not None
        return JobSpec(job_id=job.id, model_id=self.model_id, request=dataclasses.replace(request, **replaced),
                       params=dataclasses.replace(job.params, seed=context.seed), seed=context.seed,
                       priority=job.priority, inputs=inputs, codes=codes, send_codes=send_codes,
                       journaled=context.checkpoint is not None)


def _upsample_codes(job: Job, context: JobContext) -> TopCodes | None:
    """An upsample's top-level codes when its source is codes (an earlier job's, or a codes file under
    an allowed folder), read at the front; None when its source is audio."""
    from daemon.models.jukebox.codes_file import read_codes

    request = job.request
    assert isinstance(request, JukeboxUpsample)
    source_codes = job.source_codes if isinstance(job, JukeboxJob) else None
    if source_codes is not None:
        return read_codes(source_codes)
    if isinstance(request.source, str) and request.source.endswith(CODES_SUFFIXES):
        return read_codes(context.resolve_input(request.source))
    return None


def _keep_codes(job: Job, item: CodesItem) -> None:
    """A sampled Jukebox job's codes, written under --out where the in-process daemon writes them."""
    from daemon.models.jukebox.codes_file import write_codes

    path = job.codes_path if isinstance(job, JukeboxJob) else None
    if path is None:
        return
    try:
        write_codes(path, item.codes)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc
