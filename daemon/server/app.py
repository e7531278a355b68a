"""The daemon assembled: model pool, scheduler, sinks, endpoints, one asyncio loop.

The loop owns every socket; worker threads hand events back with `call_soon_threadsafe`, in
the order they were emitted.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

from daemon.audio.playback.config import PlaybackConfig
from daemon.audio.playback.sink import PlaybackSinkFactory
from daemon.backend import MusicBackend
from daemon.config import DaemonConfig
from daemon.jobs import Job
from daemon.residency import Loader, ModelPool
from daemon.runner import JobRunner
from daemon.scheduler import Scheduler
from daemon.server.handlers import RequestHandler
from daemon.server.osc_endpoint import OscEndpoint, OscReply
from daemon.server.router import EventRouter, Reply
from daemon.server.zmq_endpoint import ZmqEndpoint
from daemon.sinks import FileSinkFactory, SinkFactory
from protocol.errors import InvalidArgument, NotFound
from protocol.messages import Event

log = logging.getLogger(__name__)

#: How long shutdown waits for a running job to notice it should stop.
SHUTDOWN_GRACE_S = 10.0


def default_loader(config: DaemonConfig) -> Loader:
    """The real loader: the model registry, imported only when a model is first loaded."""

    def load(model_id: str, device: str) -> MusicBackend:
        from daemon.models.registry import load_backend

        return load_backend(model_id, device=device, cache_dir=config.cache_dir,
                            max_duration_s=config.max_duration_s)

    return load


@dataclass(frozen=True)
class Addresses:
    """Where a started daemon listens (ports resolved when 0 was asked for)."""

    host: str
    osc_port: int
    zmq_endpoint: str
    pub_endpoint: str


class Daemon:
    """One daemon; `start()`, then `wait()` until `request_stop()`, then `stop()`."""

    def __init__(self, config: DaemonConfig, *, loader: Loader | None = None,
                 sink_factories: Sequence[SinkFactory] | None = None) -> None:
        self.config = config
        out_dir = config.out_dir.resolve()
        self._pool = ModelPool(loader or default_loader(config), config.device, keep_alive_s=config.keep_alive_s)
        if sink_factories is None:
            # Sound-card playback (issue 5): opened at start with --play, else on the first play=true request.
            playback = PlaybackSinkFactory(PlaybackConfig(device=config.output_device, buffer_s=config.play_buffer_s),
                                           play_by_default=config.play)
            sink_factories = [FileSinkFactory(out_dir), playback]
        sinks = list(sink_factories)
        self._playback = next((s for s in sinks if isinstance(s, PlaybackSinkFactory)), None)
        self._runner = JobRunner(self._pool, sinks)
        self._router = EventRouter()
        self._load_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="riffd-load")
        self._scheduler: Scheduler | None = None
        self._osc: OscEndpoint | None = None
        self._zmq: ZmqEndpoint | None = None
        self._stop_requested = asyncio.Event()
        self.addresses: Addresses | None = None

    async def start(self) -> Addresses:
        loop = asyncio.get_running_loop()
        self.config.out_dir.mkdir(parents=True, exist_ok=True)
        for model_id in self.config.models:
            # Loaded (and warmed by the backend's load step) before anyone is told we are ready.
            await loop.run_in_executor(self._load_executor, partial(self._pool.load, model_id, pin=True))
        if self._playback is not None:
            # With --play, after the models: loading holds the GIL for long stretches, which would
            # starve the audio callback (JACK drops a client that misses its deadlines for long).
            await loop.run_in_executor(None, self._playback.start)

        def emit(job: Job, event: Event) -> None:
            try:
                loop.call_soon_threadsafe(self._router.broadcast, job.reply, event)
            except RuntimeError:
                # The loop is closed: a job that outlived shutdown's grace period has nobody to tell.
                log.debug("job %s: %s event after shutdown dropped", job.id, event.TYPE)

        self._scheduler = Scheduler(self._pool, self._runner, emit, max_queue=self.config.max_queue)
        handler = RequestHandler(self.config, self._scheduler, self._pool, self._router, self._load_executor,
                                 self._subscriber_for)
        self._osc = OscEndpoint(self.config.host, self.config.osc_port, handler, self._osc_connection_closed)
        await self._osc.start()
        self._zmq = ZmqEndpoint(self.config.host, self.config.zmq_port, self.config.resolved_pub_port, handler,
                                self._peer_gone)
        self._router.add_monitor(self._zmq)
        self._scheduler.start()
        self._zmq.start()
        self.addresses = Addresses(self.config.host, self._osc.port, self._zmq.endpoint, self._zmq.pub_endpoint)
        log.info("listening: OSC udp+tcp %s:%d, ZeroMQ requests %s, events %s", self.config.host,
                 self._osc.port, self._zmq.endpoint, self._zmq.pub_endpoint)
        log.info("ready: models %s on %s, audio files in %s", ", ".join(self._pool.loaded()) or "(on demand)",
                 self.config.device, self.config.out_dir.resolve())
        return self.addresses

    def request_stop(self) -> None:
        """Ask `wait()` to return (safe from a signal handler on the loop)."""
        self._stop_requested.set()

    async def wait(self) -> None:
        await self._stop_requested.wait()

    async def stop(self) -> None:
        """End queued and running jobs with an error event, deliver it, close the sockets."""
        loop = asyncio.get_running_loop()
        log.info("stopping")
        if self._scheduler is not None:
            self._scheduler.close()
            if not await loop.run_in_executor(None, self._scheduler.join, SHUTDOWN_GRACE_S):
                log.warning("a job did not stop within %.0f s; leaving it behind", SHUTDOWN_GRACE_S)
        # Let the events the workers posted last (their error events) reach the sockets.
        for _ in range(3):
            await asyncio.sleep(0)
        if self._osc is not None:
            await self._osc.close()
        if self._zmq is not None:
            await self._zmq.close()
        self._load_executor.shutdown(wait=False, cancel_futures=True)
        if self._playback is not None:
            await loop.run_in_executor(None, self._playback.close)  # fades out what still sounds
        self._pool.clear()
        log.info("stopped")

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
        return OscReply(self._osc, (host, port))

    def _osc_connection_closed(self, reply: OscReply) -> None:
        # Jobs sent over a closed connection keep running (oscsend hangs up at once); only
        # its subscription ends.
        self._router.unsubscribe(reply.key)

    def _peer_gone(self, key: Hashable) -> None:
        """A ZeroMQ client vanished: nobody will read its jobs' audio, so stop them."""
        if self._scheduler is None:
            return
        for job_id in self._scheduler.jobs_of(lambda job: job.reply is not None and job.reply.key == key):
            log.info("job %s: its client is gone; cancelling", job_id)
            try:
                self._scheduler.cancel(job_id)
            except NotFound:
                pass  # it finished meanwhile


async def serve(config: DaemonConfig, *, loader: Loader | None = None) -> None:
    """Run a daemon until SIGINT or SIGTERM, then stop it cleanly."""
    import signal

    daemon = Daemon(config, loader=loader)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, daemon.request_stop)
    try:
        await daemon.start()
        await daemon.wait()
    finally:
        await daemon.stop()


__all__ = ["Addresses", "Daemon", "default_loader", "serve"]
