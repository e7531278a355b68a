"""What each request does, whatever transport it came by. Runs on the event loop."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from functools import partial
from typing import Any, TypedDict

from daemon.audio.playback.sink import PlaybackSinkFactory
from daemon.config import DaemonConfig
from daemon.jam.control import ControlMessage, JamControl
from daemon.jam.job import snapshot_path, snapshot_seed
from daemon.jobs import Job, new_job_id
from daemon.journal import JournalEntry
from daemon.jukebox_jobs import JukeboxJob, codes_path_for, default_jukebox_model, new_jukebox_job
from daemon.paths import PathPolicy
from daemon.residency import ModelPool
from daemon.runner import check_inline_audio
from daemon.scheduler import Scheduler
from daemon.server.router import EventRouter, Reply
from daemon.tempo.service import TempoService
from protocol.audio_ref import AudioSource, InlineAudio
from protocol.errors import DurationTooLong, InvalidArgument, NotFound, RiffdError, Unsupported
from protocol.messages import (
    PROTOCOL_VERSION, Cancel, Continue, Error, Event, Generate, GetClock, GetStatus, JamPrompts, JamSet, JamSnapshot,
    JamStart, JamStop, JobRequest, JukeboxRequest, JukeboxSample, JukeboxUpsample, ListModels, LoadModel, Models,
    MusicGenRequest, Ok, Request, SetTempo, Status, Subscribe, UnloadModel, Unsubscribe,
)

log = logging.getLogger(__name__)

#: (sender, host, port) -> the Reply a subscribe request names (the transports know how).
SubscriberFactory = Callable[[Reply, "str | None", "int | None"], Reply]


class RequesterFields(TypedDict):
    """The Job fields every kind of job takes from its request and who sent it."""

    id: str
    reply: Reply
    re: str | None
    save: bool
    wants_chunk_files: Callable[[], bool]


class RequestHandler:
    def __init__(self, config: DaemonConfig, scheduler: Scheduler, pool: ModelPool, router: EventRouter,
                 load_executor: Executor, subscriber_for: SubscriberFactory, paths: PathPolicy | None = None,
                 playback: PlaybackSinkFactory | None = None, tempo: TempoService | None = None,
                 workers: Callable[[], tuple[str, ...]] = tuple) -> None:
        self._config = config
        self._workers = workers  # the cluster's worker lines for status (--ray)
        self._tempo = tempo or TempoService(prompt_template=config.tempo_prompt)
        self._paths = paths or PathPolicy(config.out_dir, config.audio_dirs, model_dirs=config.model_dirs,
                                          configured_models=config.models)
        self._scheduler = scheduler
        self._pool = pool
        self._router = router
        self._load_executor = load_executor
        self._subscriber_for = subscriber_for
        self._playback = playback
        self._started_at = time.monotonic()
        self._resuming: JournalEntry | None = None  # set while a journaled job is submitted again
        # One handler per request type, like an OSC dispatcher's address map.
        self._routes: dict[type, Callable[[Any, Reply], None]] = {
            Generate: self._submit, Continue: self._submit, Cancel: self._cancel, GetStatus: self._status_request,
            ListModels: self._models, LoadModel: self._load, UnloadModel: self._unload,
            Subscribe: self._subscribe, Unsubscribe: self._unsubscribe,
            JukeboxSample: self._submit_jukebox, JukeboxUpsample: self._submit_jukebox,
            GetClock: self._clock, SetTempo: self._set_tempo,
            JamStart: self._submit_jam, JamSet: self._jam_control, JamPrompts: self._jam_control,
            JamSnapshot: self._jam_control, JamStop: self._jam_stop,
        }

    def __call__(self, request: Request, reply: Reply) -> None:
        """Handle one decoded request; every failure becomes an error event to its sender."""
        job = request.job if isinstance(request, (JobRequest, Cancel)) and request.job else ""
        if isinstance(request, (JamSet, JamPrompts, JamSnapshot, JamStop)):
            job = request.jam
        try:
            if request.reply_port is not None:
                if reply.transport != "osc":
                    raise InvalidArgument("reply_port is for OSC requests (ZeroMQ replies come back on the socket)")
                reply = self._subscriber_for(reply, None, request.reply_port)
            model = getattr(request, "model", None)
            if isinstance(model, str) and model:
                self._paths.model(model)  # a folder on disk only from --model-dir
            self._dispatch(request, reply)
        except RiffdError as exc:
            self._router.refuse(reply, Error(job=job, code=exc.code, message=exc.message, re=request.id))
        except Exception as exc:  # noqa: BLE001 - a bug in one request must not stop the endpoint serving
            log.exception("%s request failed", request.TYPE)
            self._router.refuse(reply, Error(job=job, code="internal", message=f"{type(exc).__name__}: {exc}",
                                            re=request.id))

    def resume(self, request: Request, reply: Reply, entry: JournalEntry) -> None:
        """Submit again a job an earlier daemon on this folder accepted (issue 18), checked as a new
        request would be (folders and limits may have changed since); RiffdError if it cannot be."""
        routes: dict[type, Callable[[Any, Reply], None]] = {
            Generate: self._submit, Continue: self._submit, JukeboxSample: self._submit_jukebox,
            JukeboxUpsample: self._submit_jukebox}
        route = routes.get(type(request))
        if route is None:
            raise Unsupported(f"a journaled {request.TYPE} request cannot be resumed")
        model = getattr(request, "model", None)
        if isinstance(model, str) and model:
            self._paths.model(model)
        self._resuming = entry
        try:
            route(request, reply)
        finally:
            self._resuming = None

    def _queue(self, job: Job) -> None:
        """Submit `job`; a resumed one keeps the save flag and the seed it was journaled with."""
        entry = self._resuming
        if entry is not None:
            job.save = entry.save
            if isinstance(job, JukeboxJob) and isinstance(job.request, JukeboxSample) and job.save:
                job.codes_path = codes_path_for(self._paths.out_dir, job.id)
            if entry.seed is not None and job.params.seed is None:
                job.params = dataclasses.replace(job.params, seed=entry.seed)
        self._scheduler.submit(job, resumed=entry)

    def _dispatch(self, request: Request, reply: Reply) -> None:
        route = self._routes.get(type(request))
        if route is None:
            raise Unsupported(f"{request.TYPE}: not served by this daemon yet")
        route(request, reply)

    def _cancel(self, request: Cancel, reply: Reply) -> None:
        try:
            self._scheduler.cancel(request.job)
        except NotFound:
            # Rendered already (its done event is sent) but still sounding: fade it out.
            if self._playback is None or not self._playback.cancel(request.job):
                raise
            log.info("job %s: playback cancelled", request.job)
        self._router.reply(reply, Ok(request="cancel", subject=request.job, re=request.id))

    def _status_request(self, request: GetStatus, reply: Reply) -> None:
        self._router.reply(reply, self._status(request.id))

    def _models(self, request: ListModels, reply: Reply) -> None:
        self._router.reply(reply, Models(default_model=self._config.default_model, loaded=tuple(self._pool.engines()),
                                         re=request.id))

    def _unload(self, request: UnloadModel, reply: Reply) -> None:
        self._pool.unload(request.model)
        self._router.reply(reply, Ok(request="unload", subject=request.model, re=request.id))

    def _subscribe(self, request: Subscribe, reply: Reply) -> None:
        subscriber = self._subscriber_for(reply, request.host, request.port)
        self._router.subscribe(subscriber)
        self._router.reply(reply, Ok(request="subscribe", subject=_describe(subscriber.key), re=request.id))

    def _unsubscribe(self, request: Unsubscribe, reply: Reply) -> None:
        subscriber = self._subscriber_for(reply, request.host, request.port)
        if not self._router.unsubscribe(subscriber.key):
            raise NotFound(f"{_describe(subscriber.key)} was not subscribed")
        self._router.reply(reply, Ok(request="unsubscribe", subject=_describe(subscriber.key), re=request.id))

    def _clock(self, request: GetClock, reply: Reply) -> None:
        self._router.reply(reply, self._tempo.clock(request_id=request.id))

    def _set_tempo(self, request: SetTempo, reply: Reply) -> None:
        self._tempo.set_tempo(request.bpm)
        self._router.reply(reply, self._tempo.clock(request_id=request.id))

    def _submit(self, request: MusicGenRequest, reply: Reply) -> None:
        # In time (issue 15): a tempo must be known; a take in bars is checked at the length it has now.
        self._tempo.check_request(request)
        plan = self._tempo.plan(request)
        duration_s = None
        if plan is not None and plan.bars is not None:
            duration_s = plan.generate_s(0.0)
            if duration_s > self._config.max_duration_s:
                # The limit bounds what is generated, which for a take in bars is more than the take
                # (a conformed take is generated a bar and 12 % longer, to be cut onto the grid).
                raise DurationTooLong(
                    f"{plan.bars} bars at {plan.bpm:g} bpm are {plan.bars * plan.bar_s:.1f} s, generated as "
                    f"{duration_s:.1f} s{' to be conformed onto the grid' if plan.conform else ''}: over the "
                    f"daemon's --max-duration-s of {self._config.max_duration_s:g} s (ask for fewer bars)")
        params = request.generation_params(duration_s).validate(max_duration_s=self._config.max_duration_s)
        # Refused now rather than when a worker reaches it: paths outside the allowed folders,
        # inline audio over the limit (the runner checks paths again when it reads them).
        for source in _audio_sources(request):
            if isinstance(source, InlineAudio):
                check_inline_audio(source, self._config.max_audio_s)
            else:
                self._paths.input(source)
        job = Job(request=request, model=request.model or self._config.default_model, params=params,
                  **self._requester_fields(request, reply))
        self._queue(job)
        log.info("job %s: accepted from %s (%s, %.1f s, priority %d)", job.id, reply.transport, job.model,
                 params.duration_s, request.priority)

    def _submit_jukebox(self, request: JukeboxRequest, reply: Reply) -> None:
        """Jukebox jobs (issue 6); low priority unless asked, so live MusicGen requests go first."""
        job = new_jukebox_job(
            request, out_dir=self._paths.out_dir, max_duration_s=self._config.max_duration_s,
            check_source=self._check_source,
            default_model=lambda: default_jukebox_model(self._config.default_model, self._pool.loaded()),
            **self._requester_fields(request, reply),
        )
        self._queue(job)
        log.info("job %s: %s accepted from %s (%s, priority %d)", job.id, request.TYPE, reply.transport, job.model,
                 request.priority)

    def _submit_jam(self, request: JamStart, reply: Reply) -> None:
        """A jam (issue 14): a job that runs until stopped, steered by jam_set / jam_prompts."""
        self._tempo.check_request(request)  # in time (issue 15): a tempo must be known, conform installed
        params = request.generation_params()
        if request.duration_s is not None and request.duration_s > self._config.max_jam_s:
            raise DurationTooLong(f"duration_s {request.duration_s} is over the longest jam, {self._config.max_jam_s} s "
                                  "(--max-jam-s)")
        if request.resume is not None:
            # Refused now if it names a file outside the folders inputs may come from.
            if "/" in request.resume:
                path = self._paths.input(request.resume, what="snapshot path")
            else:
                path = snapshot_path(self._paths.out_dir, request.resume)
                if not path.is_file():
                    raise NotFound(f"no snapshot {request.resume!r} in {self._paths.out_dir / 'jams'}")
            # Its started event names the seed the saved jam started with (None: the snapshot does not say).
            params = dataclasses.replace(params, seed=snapshot_seed(path))
        # A jam is endless: saved only when asked (its file then holds everything played).
        job = Job(request=request, model=request.model or self._config.default_model, params=params,
                  jam=JamControl(), **self._requester_fields(request, reply, save_by_default=False))
        self._scheduler.submit(job)
        log.info("jam %s: accepted from %s (%s, %r)", job.id, reply.transport, job.model,
                 request.prompt or f"resume {request.resume}")

    def _requester_fields(self, request: JobRequest, reply: Reply, *,
                          save_by_default: bool | None = None) -> RequesterFields:
        """The job's id (the request's, else a new one), where its events go, whether it is saved (the
        request says; else `save_by_default`, by default yes for an OSC requester, which reads files),
        and whether a chunk needs writing as a file (an OSC requester or subscriber reads it)."""
        osc_requester = reply.transport == "osc"
        if save_by_default is None:
            save_by_default = osc_requester
        return RequesterFields(
            id=request.job or new_job_id(), reply=reply, re=request.id,
            save=request.save if request.save is not None else save_by_default,
            wants_chunk_files=lambda: osc_requester or self._router.has_osc_subscribers())

    def _running_jam(self, jam: str) -> Job:
        job = self._scheduler.find(jam)
        if job is None or job.jam is None or job.finished:
            raise NotFound(f"no running jam {jam!r}")
        return job

    def _jam_control(self, request: JamSet | JamPrompts | JamSnapshot, reply: Reply) -> None:
        """Hand a change or a snapshot to the running jam; it answers with applied / snapshot (or error)."""
        job = self._running_jam(request.jam)
        loop = asyncio.get_running_loop()
        requester = job.reply

        def answer(event: Event) -> None:
            # The requester (and subscribers) hear a jam's applied and snapshot events already.
            loop.call_soon_threadsafe(self._router.answer_once, reply, requester, event)

        job.jam.post(ControlMessage(request, answer))

    def _jam_stop(self, request: JamStop, reply: Reply) -> None:
        job = self._running_jam(request.jam)
        job.jam.stop()
        log.info("jam %s: stop asked from %s", job.id, reply.transport)
        self._router.reply(reply, Ok(request="jam_stop", subject=job.id, re=request.id))

    def _check_source(self, source: AudioSource) -> None:
        """Refuse now an input path outside the allowed folders or inline audio over the limit."""
        if isinstance(source, InlineAudio):
            check_inline_audio(source, self._config.max_audio_s)
        else:
            self._paths.input(source)

    def _load(self, request: LoadModel, reply: Reply) -> None:
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._load_executor, partial(self._pool.load, request.model, pin=True))

        def answer(done: asyncio.Future) -> None:
            exc = done.exception()
            event: Event
            if exc is None:
                event = Ok(request="load", subject=request.model, re=request.id)
            elif isinstance(exc, RiffdError):
                event = Error(job="", code=exc.code, message=exc.message, re=request.id)
            else:
                log.error("loading %s failed", request.model, exc_info=exc)
                event = Error(job="", code="model_unavailable", message=f"{type(exc).__name__}: {exc}", re=request.id)
            if isinstance(event, Error):
                self._router.refuse(reply, event)
            else:
                self._router.reply(reply, event)

        future.add_done_callback(answer)

    def status(self) -> Status:
        """The daemon's state as a `status` request would get it (for monitors: the web studio)."""
        return self._status(None)

    def _status(self, request_id: str | None) -> Status:
        snapshot = self._scheduler.snapshot()
        playing = self._playback.status() if self._playback is not None else None
        engines = self._pool.engines()
        return Status(
            protocol=PROTOCOL_VERSION, device=self._pool.device, default_model=self._config.default_model,
            queued=len(snapshot.queued), running=len(snapshot.running), models=tuple(engines),
            engine=engines.get(self._config.default_model, ""), engines=tuple(engines.values()),
            jobs=snapshot.running + snapshot.queued, max_queue=self._scheduler.max_queue,
            uptime_s=round(time.monotonic() - self._started_at, 3),
            playback=playing.device if playing is not None and playing.enabled else "off",
            underruns=playing.underruns if playing is not None else 0, jams=self._scheduler.running_jams(),
            batched=self._batched(), workers=self._workers(),
            resumed=tuple(self._scheduler.jobs_of(lambda job: job.resumed)), re=request_id, **self._clock_fields(),
        )

    def _clock_fields(self) -> dict[str, Any]:
        clock = self._tempo.clock()
        return dict(clock=clock.source, tempo=clock.tempo, beat=clock.beat, phase=clock.phase, peers=clock.peers)

    def _batched(self) -> tuple[str, ...]:
        """Jobs sharing decode steps, over every resident model."""
        found: list[str] = []
        for model_id in self._pool.loaded():
            backend = self._pool.resident(model_id)
            if backend is not None:
                found += backend.batched_jobs()
        return tuple(found)


def _audio_sources(request: MusicGenRequest) -> list[AudioSource]:
    sources: list[AudioSource | None]
    if isinstance(request, Generate):
        sources = [request.audio_prompt, request.melody]
    elif isinstance(request, Continue):
        sources = [request.audio]
    else:
        sources = []
    return [source for source in sources if source is not None]


def _describe(key: object) -> str:
    if isinstance(key, tuple) and len(key) == 3:
        scheme, host, port = key
        return f"{scheme}://{host}:{port}"
    raise InvalidArgument(f"cannot describe subscriber {key!r}")
