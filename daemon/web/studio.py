"""The studio's logic, apart from HTTP: tabs' requests to the one request handler, events back,
the board every tab sees, and the takes the studio made.

The web is a third front on the same router as OSC and ZeroMQ: a tab's message is decoded by
protocol.wire and validated by the schema exactly as a ZeroMQ request is, then handed to the
same RequestHandler; its events come back through a Reply like any transport's.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from daemon.config import DaemonConfig
from daemon.residency import ModelPool
from daemon.scheduler import Scheduler
from daemon.web.board import Board
from daemon.web.peer import WebPeer, WebReply
from daemon.web.takes import Takes
from protocol import wire
from protocol.errors import RiffdError, Unsupported
from protocol.messages import (
    BIT_DEPTHS, FLOAT_DEPTH, OUTPUT_FORMATS, PROTOCOL_VERSION, REQUESTS, Accepted, Done, Error, Event, JobRequest,
    Request, Started, Status, Subscribe, Unsubscribe,
)

log = logging.getLogger(__name__)

#: Least time between two board messages (progress of many jobs is coalesced into one).
BOARD_INTERVAL_S = 0.1
#: While a tab is open the board is also sent this often (uptime, playback underruns).
TICK_S = 1.0
#: Requests the studio remembers until their job is accepted (a tab sending many without reading).
MAX_PENDING = 256

Handler = Callable[[Request, WebReply], None]


class Studio:
    """Tabs, the board and the takes; every method runs on the daemon's loop."""

    def __init__(self, config: DaemonConfig, handler: Handler, status: Callable[[], Status], scheduler: Scheduler,
                 pool: ModelPool, *, max_upload_bytes: int) -> None:
        self._config = config
        self._handler = handler
        self._status = status
        self._scheduler = scheduler
        self._pool = pool
        self.max_upload_bytes = max_upload_bytes
        self.takes = Takes(Path(config.out_dir))
        self._board = Board()
        self._peers: dict[int, WebPeer] = {}
        self._ids = itertools.count(1)
        self._request_ids = itertools.count(1)
        # Request id -> the fields a tab sent (for the take's history entry), until accepted.
        self._pending: dict[str, dict[str, Any]] = {}
        # Job id -> (fields, seed) of the studio's own jobs, until they end.
        self._own: dict[str, tuple[dict[str, Any], int | None]] = {}
        self._board_due: asyncio.TimerHandle | None = None
        self._ticker: asyncio.Task[None] | None = None

    # -- tabs -------------------------------------------------------------------------------

    def open(self, peer_factory: Callable[[int], WebPeer]) -> WebPeer:
        peer = peer_factory(next(self._ids))
        self._peers[peer.id] = peer
        log.info("web: tab %d connected (%d open)", peer.id, len(self._peers))
        peer.push(_json({"type": "web.hello", "peer": peer.id, "protocol": PROTOCOL_VERSION,
                         "formats": list(OUTPUT_FORMATS), "bit_depths": [*BIT_DEPTHS, FLOAT_DEPTH],
                         "limits": self._limits(),
                         # What this daemon serves: the page shows the jam controls only where jams exist.
                         "requests": sorted(REQUESTS)}))
        peer.push(_json(self._board_message()))
        peer.push(_json(self._takes_message()))
        if self._ticker is None:
            self._ticker = asyncio.get_running_loop().create_task(self._tick(), name="riffd-web-tick")
        return peer

    def close(self, peer: WebPeer) -> None:
        peer.closed = True
        self._peers.pop(peer.id, None)
        log.info("web: tab %d left (%d open)", peer.id, len(self._peers))
        if not self._peers and self._ticker is not None:
            self._ticker.cancel()  # nobody looking: nothing runs
            self._ticker = None

    def close_all(self) -> None:
        for peer in list(self._peers.values()):
            self.close(peer)
        if self._board_due is not None:
            self._board_due.cancel()

    @property
    def tabs(self) -> int:
        return len(self._peers)

    # -- requests from a tab ----------------------------------------------------------------

    def receive(self, peer: WebPeer, message: Sequence[bytes | memoryview]) -> None:
        """One message from a tab: a request in protocol.wire's frames, handled like ZeroMQ's."""
        reply = WebReply(peer, self._deliver)
        try:
            request = wire.decode_request(message)
            if isinstance(request, (Subscribe, Unsubscribe)):
                raise Unsupported(f"{request.TYPE} is for OSC listeners; the studio already sees every job")
        except RiffdError as exc:
            request_id, job = wire.reply_ids(message)
            log.info("web: refused a message from tab %d: %s", peer.id, exc.message)
            peer.push_event(Error(job=job, code=exc.code, message=exc.message, re=request_id))
            return
        if request.id is None:
            request = dataclasses.replace(request, id=f"web-{next(self._request_ids)}")
        assert request.id is not None
        if isinstance(request, JobRequest):
            if len(self._pending) >= MAX_PENDING:
                self._pending.pop(next(iter(self._pending)))
            self._pending[request.id] = _settings(message[0])
        self._handler(request, reply)

    def _deliver(self, peer: WebPeer, event: Event) -> None:
        """An event for a tab's own request or job (before the monitors see it)."""
        job = getattr(event, "job", "")
        if isinstance(event, Accepted) and event.re in self._pending:
            peer.jobs.add(job)
            self._own[job] = (self._pending.pop(event.re), None)
        elif isinstance(event, Error) and event.re in self._pending:
            del self._pending[event.re]  # refused before it was a job
        elif isinstance(event, Started) and job in self._own:
            self._own[job] = (self._own[job][0], event.seed)
        if not peer.closed:
            peer.push_event(event)
        if isinstance(event, (Done, Error)) and job in self._own:
            settings, seed = self._own.pop(job)
            if isinstance(event, Done) and event.path:
                self._add_take(job, Path(event.path), settings, seed)

    def _add_take(self, job: str, path: Path, settings: dict[str, Any], seed: int | None) -> None:
        try:
            self.takes.add(job, path, request=settings, seed=seed)
        except RiffdError as exc:
            log.warning("web: %s", exc.message)
            return
        self._send_takes()

    def _send_takes(self) -> None:
        message = _json(self._takes_message())
        for peer in self._peers.values():
            peer.push(message)

    # -- the board: every job of every client -------------------------------------------------

    def publish(self, event: Event) -> None:
        """The router's monitor hook: every event of every job, from any transport."""
        if self._board.see(event) and self._peers and self._board_due is None:
            self._board_due = asyncio.get_running_loop().call_later(BOARD_INTERVAL_S, self._send_board)
        if isinstance(event, Done) and event.path and self.takes.replaced(event.job):
            # Another job reused a take's id (a Pd patch's fixed `job`, say) and saved over its file.
            log.info("web: take %s: its file was replaced by a later job with the same id", event.job)
            self._send_takes()

    def _send_board(self) -> None:
        self._board_due = None
        if not self._peers:
            return
        message = _json(self._board_message())
        for peer in list(self._peers.values()):
            peer.push(message)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            self._send_board()

    def _board_message(self) -> dict[str, Any]:
        status = self._status()
        models = []
        for model_id, backend in self._pool.residents().items():
            family = "jukebox" if "jukebox" in type(backend).__module__ else "musicgen"
            models.append({"id": model_id, "family": family, "sample_rate": backend.sample_rate,
                           "channels": backend.audio_channels, "melody": bool(backend.supports_melody)})
        return {
            "type": "web.studio", "device": status.device, "default_model": status.default_model,
            "models": models, "playback": status.playback, "underruns": status.underruns,
            "uptime_s": status.uptime_s, "queued": status.queued, "running": status.running,
            "max_queue": status.max_queue, "jams": list(getattr(status, "jams", ())), "time": time.time(),
            # The daemon's timeline (issue 15): Link's, its own at a request's tempo, or none yet.
            "clock": {"source": status.clock, "tempo": status.tempo, "beat": status.beat, "peers": status.peers},
            **self._board.view(self._scheduler.describe()),
        }

    def _takes_message(self) -> dict[str, Any]:
        return {"type": "web.takes",
                "takes": [take.to_json(replaced=self.takes.replaced(take.job)) for take in self.takes.all()]}

    def _limits(self) -> dict[str, Any]:
        return {"max_duration_s": self._config.max_duration_s, "max_audio_s": self._config.max_audio_s,
                "max_upload_bytes": self.max_upload_bytes, "max_queue": self._config.max_queue,
                "max_jobs_per_client": self._config.max_jobs_per_client}


def _settings(header: bytes | memoryview) -> dict[str, Any]:
    """A request header's fields for the history (inline audio noted, its samples not kept)."""
    try:
        fields = json.loads(bytes(header))
    except ValueError:
        return {}
    if not isinstance(fields, dict):
        return {}
    fields.pop("v", None)
    fields.pop("id", None)
    for name, value in list(fields.items()):
        if isinstance(value, dict) and "buffer" in value:
            frames, rate = value.get("frames"), value.get("sample_rate")
            seconds = frames / rate if isinstance(frames, int) and isinstance(rate, int) and rate > 0 else 0.0
            fields[name] = {"inline": True, "seconds": round(seconds, 3)}
    return fields


def _json(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"), allow_nan=False, default=str)


__all__ = ["Studio"]
