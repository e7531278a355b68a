"""The daemon assembled: model pool, scheduler, sinks, endpoints, one asyncio loop.

The loop owns every socket; worker threads hand events back with `call_soon_threadsafe`, in
the order they were emitted.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, NoReturn, TypeVar

import zmq

from daemon.audio.playback.config import PlaybackConfig
from daemon.audio.playback.sink import PlaybackSinkFactory
from daemon.backend import MusicBackend
from daemon.config import LOOPBACK_NETWORKS, DaemonConfig, environment_warm_conform
from daemon.durable import DurableJobs, Reconnections
from daemon.jam.job import JamSettings
from daemon.jobs import Job
from daemon.journal import Journal
from daemon.paths import PathPolicy
from daemon.residency import Loader, ModelPool
from daemon.runner import JobRunner
from daemon.scheduler import Scheduler
from daemon.server.access import CurveServerKeys, RateLimiter, SourceFilter
from daemon.server.handlers import RequestHandler
from daemon.server.osc_endpoint import OscEndpoint, OscReply
from daemon.server.peers import PeerGate
from daemon.server.ports import cannot_listen, check_ports, listeners
from daemon.server.resume import RECONNECT_GRACE_S, await_requesters, reply_for, restore_subscribers, resume_jobs
from daemon.server.router import EventRouter, Reply
from daemon.server.zmq_endpoint import ZmqEndpoint, ZmqReply
from daemon.sinks import FileSinkFactory, SinkFactory
from daemon.sinks.retention import remove_partials, sweep_chunks
from daemon.tempo.service import TempoService
from daemon.tempo.timeline import OwnTimeline
from protocol.errors import InvalidArgument, NotFound
from protocol.messages import Event, Request

if TYPE_CHECKING:
    from daemon.web.endpoint import WebEndpoint

log = logging.getLogger(__name__)

#: How long shutdown waits for a running job to notice it should stop.
SHUTDOWN_GRACE_S = 10.0
#: Longest pause between two sweeps of expired chunk files.
MAX_SWEEP_INTERVAL_S = 30.0
#: Longest wait for conform's warm-up before the daemon says it is ready (seconds are usual).
WARMUP_WAIT_S = 120.0

T = TypeVar("T")


def default_loader(config: DaemonConfig) -> Loader:
    """The real loader: the model registry, imported only when a model is first loaded."""

    def load(model_id: str, device: str) -> MusicBackend:
        from daemon.models.registry import load_backend

        return load_backend(model_id, device=device, cache_dir=config.cache_dir,
                            max_duration_s=config.max_duration_s, engine=config.engine, max_batch=config.max_batch,
                            batch_memory_mb=config.batch_memory_mb, codec_thread=config.codec_thread)

    return load


def cluster_for(config: DaemonConfig):  # -> daemon.cluster.cluster.RayCluster
    """The Ray cluster a --ray daemon runs its models on (not joined yet); Ray is imported only here."""
    from daemon.cluster.cluster import ClusterSettings, RayCluster
    from daemon.cluster.items import LoadSettings

    assert config.ray is not None
    settings = ClusterSettings(address=config.ray, workers=config.ray_workers, worker_cpus=config.ray_worker_cpus,
                               worker_gpus=config.ray_worker_gpus, connect_timeout_s=config.ray_connect_timeout_s,
                               call_timeout_s=config.ray_call_timeout_s,
                               load_timeout_s=config.ray_load_timeout_s, stream_timeout_s=config.ray_stream_timeout_s)
    load = LoadSettings(device=config.device, cache_dir=config.cache_dir, max_duration_s=config.max_duration_s,
                        engine=config.engine, max_batch=config.max_batch, batch_memory_mb=config.batch_memory_mb)
    return RayCluster(settings, load)


@dataclass(frozen=True)
class Addresses:
    """Where a started daemon listens (ports resolved when 0 was asked for)."""

    host: str
    osc_port: int
    zmq_endpoint: str
    pub_endpoint: str
    # The web studio's URL with its token (None with --no-web or when its port was taken).
    web_url: str | None = None


class Daemon:
    """One daemon; `start()`, then `wait()` until `request_stop()`, then `stop()`."""

    def __init__(self, config: DaemonConfig, *, loader: Loader | None = None,
                 sink_factories: Sequence[SinkFactory] | None = None) -> None:
        self.config = config
        out_dir = config.out_dir.resolve()
        # The timeline (issue 15): a Link session (opened in start, on the loop) or the daemon's own.
        timeline = self._link = None
        if config.link:
            from daemon.tempo.link import LinkTimeline

            # Alone on the network riffd founds the session, at --bpm when given: a peer joining
            # later adopts it (Link's rule for every app), so the founding tempo should be the set's.
            timeline = self._link = LinkTimeline() if config.bpm is None else LinkTimeline(founding_bpm=config.bpm)
        self.tempo = TempoService(timeline or OwnTimeline(config.bpm), prompt_template=config.tempo_prompt,
                                  play_buffer_s=config.play_buffer_s)
        # With --ray (issue 19) models live in workers on a Ray cluster; the pool holds stand-ins for them.
        self._cluster = cluster_for(config) if config.ray is not None and loader is None else None
        if self._cluster is not None:
            loader = self._cluster_loader
        # The device by name once first needed (the ready line, after the ports were tried: naming
        # auto's choice imports torch, seconds a taken port's error should not wait for).
        self._pool = ModelPool(loader or default_loader(config), lambda: self._cluster_or_device(config),
                               keep_alive_s=config.keep_alive_s)
        if sink_factories is None:
            # Sound-card playback (issue 5): opened at start with --play, else on the first play=true request.
            playback = PlaybackSinkFactory(PlaybackConfig(device=config.output_device, buffer_s=config.play_buffer_s),
                                           play_by_default=config.play, timeline=self.tempo.timeline)
            sink_factories = [FileSinkFactory(out_dir), playback]
        sinks = list(sink_factories)
        self._playback = next((s for s in sinks if isinstance(s, PlaybackSinkFactory)), None)
        if self._playback is not None:
            self._playback.follow(self.tempo.timeline)  # one handed in plays jobs in time on the daemon's beat
        self.paths = PathPolicy(out_dir, config.audio_dirs, model_dirs=config.model_dirs,
                                configured_models=config.models)
        self._runner = JobRunner(self._pool, sinks, paths=self.paths, max_audio_s=config.max_audio_s,
                                 tempo=self.tempo,
                                 jam=JamSettings(lead_s=config.jam_lead_s, context_s=config.jam_context_s,
                                                 window_s=config.jam_window_s, grace_s=config.jam_grace_s,
                                                 max_s=config.max_jam_s))
        self._source_filter = SourceFilter(config.osc_allow)
        self._sweeper: asyncio.Task[None] | None = None
        self._router = EventRouter()
        self._load_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="riffd-load")
        self._scheduler: Scheduler | None = None
        self._osc: OscEndpoint | None = None
        self._zmq: ZmqEndpoint | None = None
        self._web: WebEndpoint | None = None
        self._stop_requested = asyncio.Event()
        self.addresses: Addresses | None = None
        self._durable: DurableJobs | None = None
        self._reconnections = Reconnections()

    async def start(self) -> Addresses:
        loop = asyncio.get_running_loop()
        # Before the models load: a port another program holds fails the start in a moment.
        check_ports(self.config.host, listeners(self.config))
        self.config.out_dir.mkdir(parents=True, exist_ok=True)
        remove_partials(self.config.out_dir)  # a killed run's half-written files (never under final names)
        try:
            self._durable = DurableJobs(Journal(self.config.resolved_state_dir / "journal"))
        except OSError as exc:
            raise InvalidArgument(f"cannot use the journal folder under {self.config.resolved_state_dir} "
                                  f"(--state-dir): {exc.strerror or exc}") from None
        curve = None
        if self.config.curve_required:
            secret_key, clients_dir = self.config.curve_secret_key, self.config.curve_clients_dir
            assert secret_key is not None and clients_dir is not None  # DaemonConfig.validate checked
            curve = CurveServerKeys.load(secret_key, clients_dir)
        # Conform's numba kernels compile now, beside the model loads, so that no take or jam pays
        # for them (issue 15). With a tempo source (--link, --bpm) ready waits for it below.
        has_tempo = self.config.link or self.config.bpm is not None
        warm = self.config.warm_conform
        if warm is None:
            warm = has_tempo or environment_warm_conform()
        warming = warm and self.tempo.warm_conform() and has_tempo
        if self._cluster is not None:
            try:
                await _on_daemon_thread(self._cluster.start)
            finally:
                _take_back_sigterm()
        for model_id in self.config.models:
            # Loaded (and warmed by the backend's load step) before anyone is told we are ready;
            # on a daemon thread, so a SIGTERM meanwhile ends the process without waiting for it.
            await _on_daemon_thread(partial(self._pool.load, model_id, pin=True))
            if self._cluster is not None:  # on every worker: no job waits for a load
                await _on_daemon_thread(partial(self._cluster.preload, model_id))
        if self._link is not None:
            await self._link.open()
        if warming and not await loop.run_in_executor(None, self.tempo.warmup.wait, WARMUP_WAIT_S):
            log.warning("conform's warm-up is still running after %.0f s: serving anyway", WARMUP_WAIT_S)
        if self._playback is not None:
            # With --play, after the models: loading holds the GIL for long stretches, which would
            # starve the audio callback (JACK drops a client that misses its deadlines for long).
            await loop.run_in_executor(None, self._playback.start)

        def emit(job: Job, event: Event) -> None:
            self._reconnections.saw(job, event)
            try:
                loop.call_soon_threadsafe(self._router.broadcast, job.reply, event)
            except RuntimeError:
                # The loop is closed: a job that outlived shutdown's grace period has nobody to tell.
                log.debug("job %s: %s event after shutdown dropped", job.id, event.TYPE)

        # A worker per job that may run at once: continuous batching runs up to max_batch jobs (on each
        # cluster worker with --ray).
        threads = self.config.max_batch * (self._cluster.worker_count if self._cluster is not None else 1)
        self._scheduler = Scheduler(self._pool, self._runner, emit, max_queue=self.config.max_queue,
                                    max_per_client=self.config.max_jobs_per_client, workers=threads,
                                    max_jams=self.config.max_jams, durable=self._durable)
        handler = RequestHandler(self.config, self._scheduler, self._pool, self._router, self._load_executor,
                                 self._subscriber_for, self.paths, playback=self._playback, tempo=self.tempo,
                                 workers=self._cluster.describe if self._cluster is not None else tuple)
        self._osc = OscEndpoint(self.config.host, self.config.osc_port, handler, self._osc_connection_closed,
                                source_filter=self._source_filter,
                                rate_limiter=RateLimiter(self.config.osc_rate_limit), on_refused=self._router.refuse)
        try:
            await self._osc.start()
        except OSError as exc:  # taken since check_ports tried it
            raise cannot_listen("OSC", f"{self.config.host}:{self.config.osc_port}", "--osc-port", exc.errno,
                                exc.strerror or str(exc)) from None

        def handle_zmq(request: Request, reply: ZmqReply) -> None:
            self._reconnections.heard_from(reply)  # a resumed job's client is back: tell it of the job
            handler(request, reply)

        try:
            self._zmq = ZmqEndpoint(self.config.host, self.config.zmq_port, self.config.resolved_pub_port,
                                    handle_zmq, self._peer_gone, curve=curve,
                                    peers=PeerGate(self.config.zmq_max_peers, self.config.zmq_rate_limit),
                                    on_refused=self._router.refuse)
        except zmq.ZMQError as exc:  # taken since check_ports tried it (libzmq does not say which of the two)
            ports = f"{self.config.host}:{self.config.zmq_port} or :{self.config.resolved_pub_port}"
            raise cannot_listen("ZeroMQ", ports, "--zmq-port or --pub-port", exc.errno, exc.strerror) from None
        self._router.add_monitor(self._zmq)
        # Issue 18: what an earlier daemon on this folder left: its OSC subscribers, then its jobs (before
        # the workers start, so resumed jobs run first and in their order).
        restore_subscribers(self._durable.journal, self._router, self._osc, self._source_filter)
        resume_jobs(self._durable.journal, handler, self._scheduler, self._reconnections,
                    lambda entry: reply_for(entry, self._osc, self._zmq, self._source_filter))
        await await_requesters(self._reconnections, RECONNECT_GRACE_S)
        if self.config.web:
            from daemon.web.endpoint import WebEndpoint  # aiohttp is imported only when the studio is on

            web = WebEndpoint(self.config, handler, self._scheduler, self._pool)
            if await web.start():
                self._web = web
                self._router.add_monitor(web)
        self._scheduler.start()
        self._zmq.start()
        if self.config.chunk_keep_s > 0:
            self._sweeper = loop.create_task(self._sweep_chunks(), name="riffd-chunk-sweeper")
        self.addresses = Addresses(self.config.host, self._osc.port, self._zmq.endpoint, self._zmq.pub_endpoint,
                                   web_url=self._web.url if self._web is not None else None)
        log.info("listening: OSC udp+tcp %s:%d, ZeroMQ requests %s, events %s", self.config.host,
                 self._osc.port, self._zmq.endpoint, self._zmq.pub_endpoint)
        if self._web is not None:
            log.info("studio: %s", self._web.url)
        if self.config.remote and set(self.config.osc_allow) <= set(LOOPBACK_NETWORKS):
            log.warning("listening on %s, but --osc-allow lets only this machine send OSC: add the networks "
                        "of your controllers (e.g. --osc-allow 192.168.1.0/24)", self.config.host)
        log.info("ready: models %s on %s, audio files in %s", ", ".join(self._pool.loaded()) or "(on demand)",
                 self._pool.device, self.config.out_dir.resolve())
        return self.addresses

    @property
    def ray_stranded(self) -> bool:
        """Stopped after this machine's Ray node died: Ray could not be shut down (RayCluster.stranded)."""
        return self._cluster is not None and self._cluster.stranded

    def request_stop(self) -> None:
        """Ask `wait()` to return (safe from a signal handler on the loop)."""
        self._stop_requested.set()

    async def wait(self) -> None:
        await self._stop_requested.wait()

    async def stop(self) -> None:
        """End queued and running jobs with an error event, deliver it, close the sockets."""
        loop = asyncio.get_running_loop()
        log.info("stopping")
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._scheduler is not None:
            self._scheduler.close()
            if not await loop.run_in_executor(None, self._scheduler.join, SHUTDOWN_GRACE_S):
                log.warning("a job did not stop within %.0f s; leaving it behind", SHUTDOWN_GRACE_S)
        # Let the events the workers posted last (their error events) reach the sockets.
        for _ in range(3):
            await asyncio.sleep(0)
        if self._web is not None:
            await self._web.close()
        if self._osc is not None:
            await self._osc.close()
        if self._zmq is not None:
            await self._zmq.close()
        self._load_executor.shutdown(wait=False, cancel_futures=True)
        if self._playback is not None:
            await loop.run_in_executor(None, self._playback.close)  # fades out what still sounds
        self._pool.clear()
        if self._cluster is not None:
            await loop.run_in_executor(None, self._cluster.close)
        if self._link is not None:
            self._link.close()
        log.info("stopped")

    def _cluster_or_device(self, config: DaemonConfig) -> str:
        """Where the pool's models run: "ray" (the cluster's workers), else the device by name, "auto"
        resolved ("cpu", "cuda:0"), so that the log and status say which one it is."""
        if self._cluster is not None:
            return "ray"
        from daemon.models.registry import device_in_use  # torch, as a model load would import it

        return device_in_use(config.device)

    def _cluster_loader(self, model_id: str, device: str) -> MusicBackend:
        """With --ray: `model_id` resident on a cluster worker, as the pool's stand-in for it."""
        from daemon.cluster.backend import RayBackend

        assert self._cluster is not None
        return RayBackend(self._cluster, self._cluster.ensure_loaded(model_id))

    def _subscriber_for(self, reply: Reply, host: str | None, port: int | None) -> Reply:
        assert self._osc is not None
        if port is None:
            if isinstance(reply, OscReply):
                return reply  # the sender itself: its TCP connection or its UDP source address
            raise InvalidArgument("subscribe over ZeroMQ needs a port (the PUB endpoint already carries every event)")
        if host is None:
            host = reply.address[0] if isinstance(reply, OscReply) else "127.0.0.1"
        if host == "localhost":
            host = "127.0.0.1"
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise InvalidArgument(f"host must be an IP address, got {host!r}") from None
        if not self._source_filter.allows(host):
            # Events only go where requests may come from: no pointing the daemon at a stranger.
            raise InvalidArgument(f"host {host} is not on the OSC allow-list (--osc-allow)")
        return OscReply(self._osc, (host, port))

    async def _sweep_chunks(self) -> None:
        """Delete chunk files of ended jobs once they are `chunk_keep_s` old, every so often."""
        loop = asyncio.get_running_loop()
        keep_s = self.config.chunk_keep_s
        interval_s = min(MAX_SWEEP_INTERVAL_S, max(keep_s / 2, 0.1))
        while True:
            await asyncio.sleep(interval_s)
            assert self._scheduler is not None
            active = set(self._scheduler.jobs_of(lambda job: True))
            await loop.run_in_executor(None, sweep_chunks, self.config.out_dir, keep_s, active, time.time)

    def _osc_connection_closed(self, reply: OscReply) -> None:
        # Jobs sent over a closed connection keep running (oscsend hangs up at once); only
        # its subscription ends, and its jams start their grace period (they end unless they play here).
        self._router.unsubscribe(reply.key)
        self._jams_lose_listener(reply.key)

    def _jams_lose_listener(self, key: Hashable) -> bool:
        """Tell the jams `key` started that it is gone; True if it had any."""
        if self._scheduler is None:
            return False
        found = False
        for job_id in self._scheduler.jobs_of(lambda job: job.jam is not None and job.reply is not None
                                              and job.reply.key == key):
            job = self._scheduler.find(job_id)
            found = found or job is not None
            if job is not None and job.jam.listener_gone():
                log.info("jam %s: its client is gone; it stops in %.0f s unless it plays here", job_id,
                         self.config.jam_grace_s)
        return found

    def _peer_gone(self, key: Hashable) -> None:
        """A ZeroMQ client vanished: nobody will read its jobs' audio, so stop them (its jams after a grace period)."""
        if self._scheduler is None:
            return
        self._jams_lose_listener(key)
        for job_id in self._scheduler.jobs_of(lambda job: job.jam is None and not job.resumed
                                              and job.reply is not None and job.reply.key == key):
            log.info("job %s: its client is gone; cancelling", job_id)
            try:
                self._scheduler.cancel(job_id)
            except NotFound:
                pass  # it finished meanwhile


async def serve(config: DaemonConfig, *, loader: Loader | None = None) -> None:
    """Run a daemon until SIGINT or SIGTERM, then stop it cleanly.

    A signal during start-up (models still loading) ends it at once: the load runs on a daemon
    thread, which the interpreter does not wait for.
    """
    import signal

    daemon = Daemon(config, loader=loader)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, daemon.request_stop)
    starting = loop.create_task(daemon.start(), name="riffd-start")
    stopping = loop.create_task(daemon.wait(), name="riffd-wait")
    try:
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            log.info("stop requested during start-up")
            starting.cancel()
        else:
            starting.result()  # start-up errors propagate
            await stopping
    finally:
        stopping.cancel()
        await daemon.stop()
    if daemon.ray_stranded:
        _exit_stopped()


def _exit_stopped() -> NoReturn:
    """End the process now, as a clean stop (0). Ray's core worker outlived its node: shut down, it
    would ask the dead raylet (and Ray then ends the process with 1), and left to the interpreter's
    exit, its threads crash the teardown (SIGSEGV)."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _take_back_sigterm() -> None:
    """Joining Ray installs its crash handler on SIGTERM: it prints a native stack trace, and arms an
    alarm that aborts the process 3 s later, which a stop waiting on a lost cluster outlasts (exit
    134). The handler Python had (`serve`'s, through the loop) takes the signal back: SIGTERM is a stop."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        return  # an embedded daemon: its host process owns the signals
    handler = signal.getsignal(signal.SIGTERM)
    if handler is not None:  # None: not set from Python, nothing to put back
        signal.signal(signal.SIGTERM, handler)


def _on_daemon_thread(work: Callable[[], T]) -> "asyncio.Future[T]":
    """Run `work` on a new daemon thread; its result or exception comes back on the loop."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(outcome: Callable[[], None]) -> None:
        if not future.done():
            outcome()

    def run() -> None:
        try:
            result = work()
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
            outcome = partial(future.set_exception, exc)
        else:
            outcome = partial(future.set_result, result)
        try:
            loop.call_soon_threadsafe(settle, outcome)
        except RuntimeError:
            pass  # the loop is gone: the daemon stopped while this was loading

    threading.Thread(target=run, name="riffd-startup-load", daemon=True).start()
    return future


__all__ = ["Addresses", "Daemon", "default_loader", "serve"]
