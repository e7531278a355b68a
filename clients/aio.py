"""The asyncio client: the same requests as `Client`, awaited; job streams as async iterators.

    async with AsyncClient("tcp://127.0.0.1:7401") as client:
        async for event in client.generate("warm analog pad", duration_s=8):
            ...

One task reads the socket and hands each event to the request it answers, so any number of
jobs can be streamed concurrently from one client.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import zmq
import zmq.asyncio
from zmq.utils.monitor import parse_monitor_message

from clients.client import DEFAULT_ENDPOINT, connect_dealer, raise_for
from clients.connection import MONITORED_EVENTS, ConnectionWatch, connection_lost, lost_with_daemon
from clients.curve import CurveClientKeys
from clients.job_requests import JobRequests, PromptWeights, jam_request, new_id, prompts_request
from clients.joining import ChunkJoiner, Rendered
from protocol import wire
from protocol.errors import RiffdError
from protocol.messages import (
    TERMINAL_EVENTS, Accepted, Applied, Cancel, Clock, Error, Event, GetClock, GetStatus, JamSet, JamSnapshot,
    JamStart, JamStop, ListModels, LoadModel, Models, Ok, Request, SetTempo, Snapshot, Status, Subscribe,
    UnloadModel, Unsubscribe,
)

log = logging.getLogger(__name__)


class AsyncJobStream:
    """The events of one job. The request is sent when iteration starts. Used as `async with`,
    leaving the block before the job ends cancels it."""

    def __init__(self, client: "AsyncClient", request: Request) -> None:
        self._client = client
        self.request = request
        self.job: str | None = getattr(request, "job", None)
        self.finished = False
        self._queue: asyncio.Queue[Event] | None = None

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._events()

    async def _events(self) -> AsyncIterator[Event]:
        if self._queue is not None:
            raise RuntimeError("a job stream can be iterated once")
        self._queue = self._client._register(self.request)
        await self._client._send(self.request)
        try:
            while not self.finished:
                event = await self._client._next(self._queue)
                if isinstance(event, Accepted):
                    self.job = event.job
                if isinstance(event, TERMINAL_EVENTS):
                    self.finished = True
                yield event
        finally:
            if not self.finished:
                await self.cancel()
            self._client._forget(self.request.id)

    async def collect(self) -> Rendered:
        """Read to the end and join the chunks, as `JobStream.collect` does (a Jukebox preview is
        skipped; a job a restarted daemon resumed is joined from its new start); raise RiffdError if
        the job fails."""
        joiner = ChunkJoiner()
        async for event in self:
            joiner.add(event)
            result = joiner.ended(event)
            if result is not None:
                return result
        raise RiffdError("the job stream ended without a result", code="protocol")

    async def cancel(self) -> None:
        if self.job is not None and not self.finished:
            await self._client._send(Cancel(job=self.job, id=new_id()))

    async def __aenter__(self) -> "AsyncJobStream":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Leaving the block before the job ended cancels it (now, not at garbage collection)."""
        if not self.finished:
            await self.cancel()
            self.finished = True
        self._client._forget(self.request.id)


class AsyncJamHandle(AsyncJobStream):
    """A running jam: `async for` its events; steer it from any task meanwhile (`await jam.set(...)`)."""

    request: JamStart

    def __init__(self, client: "AsyncClient", request: JamStart) -> None:
        super().__init__(client, request)
        self.jam = request.job or ""

    async def set(self, **changes: Any) -> Applied:
        return await self._client.jam_set(self.jam, **changes)

    async def prompts(self, prompts: PromptWeights) -> Applied:
        return await self._client.jam_prompts(self.jam, prompts)

    async def snapshot(self, name: str | None = None) -> Snapshot:
        return await self._client.jam_snapshot(self.jam, name)

    async def stop(self) -> Ok:
        return await self._client.jam_stop(self.jam)


class AsyncClient(JobRequests[AsyncJobStream]):
    """The asyncio client: job requests (from JobRequests) return AsyncJobStreams; control requests are awaited."""

    def __init__(self, endpoint: str = DEFAULT_ENDPOINT, *, timeout_s: float | None = 60.0,
                 curve: CurveClientKeys | None = None) -> None:
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self._context = zmq.asyncio.Context()
        self._socket = self._context.socket(zmq.DEALER)
        # Watched from before it connects, so that the first handshake is seen (clients.connection).
        self._monitor = self._socket.get_monitor_socket(MONITORED_EVENTS)
        self._connection = ConnectionWatch()
        connect_dealer(self._socket, endpoint, curve)
        self._queues: dict[str, asyncio.Queue[Event]] = {}
        self._lost_with_daemon: dict[str, Request] = {}  # waiting requests whose jobs end if the daemon goes
        self._reader: asyncio.Task[None] | None = None

    def jam(self, prompt: str = "", *, model: str | None = None, **options: Any) -> AsyncJamHandle:
        """A jam (sent when iteration starts); options are JamStart's fields."""
        request = jam_request(prompt, model=model, **options)
        request.validate()
        return AsyncJamHandle(self, request)

    async def jam_set(self, jam: str, *, prompt: str | None = None, temperature: float | None = None,
                      top_k: int | None = None, top_p: float | None = None, guidance_scale: float | None = None,
                      gain: float | None = None, at_samples: int | None = None) -> Applied:
        return await self._call(JamSet(jam=jam, prompt=prompt, temperature=temperature, top_k=top_k, top_p=top_p,
                                       guidance_scale=guidance_scale, gain=gain, at_samples=at_samples, id=new_id()),
                                Applied)

    async def jam_prompts(self, jam: str, prompts: PromptWeights) -> Applied:
        return await self._call(prompts_request(jam, prompts), Applied)

    async def jam_snapshot(self, jam: str, name: str | None = None) -> Snapshot:
        return await self._call(JamSnapshot(jam=jam, name=name, id=new_id()), Snapshot)

    async def jam_stop(self, jam: str) -> Ok:
        return await self._call(JamStop(jam=jam, id=new_id()), Ok)

    async def cancel(self, job: str) -> Ok:
        return await self._call(Cancel(job=job, id=new_id()), Ok)

    async def status(self) -> Status:
        return await self._call(GetStatus(id=new_id()), Status)

    async def clock(self) -> Clock:
        """The daemon's timeline: tempo, beat, phase, Link peers (issue 15)."""
        return await self._call(GetClock(id=new_id()), Clock)

    async def tempo(self, bpm: float) -> Clock:
        """Set the tempo of the Link session (every peer follows) or of the daemon's own timeline."""
        return await self._call(SetTempo(float(bpm), id=new_id()), Clock)

    async def models(self) -> Models:
        return await self._call(ListModels(id=new_id()), Models)

    async def load(self, model: str) -> Ok:
        return await self._call(LoadModel(model=model, id=new_id()), Ok)

    async def unload(self, model: str) -> Ok:
        return await self._call(UnloadModel(model=model, id=new_id()), Ok)

    async def subscribe(self, port: int, host: str | None = None) -> Ok:
        return await self._call(Subscribe(host=host, port=port, id=new_id()), Ok)

    async def unsubscribe(self, port: int, host: str | None = None) -> Ok:
        return await self._call(Unsubscribe(host=host, port=port, id=new_id()), Ok)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            try:
                await self._reader
            except asyncio.CancelledError:
                pass
        self._socket.disable_monitor()
        self._monitor.close()
        self._socket.close()
        self._context.term()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _stream(self, request: Request) -> AsyncJobStream:
        request.validate()
        return AsyncJobStream(self, request)

    async def _call(self, request: Request, expected: type[Event]) -> Any:
        request.validate()
        queue = self._register(request)
        try:
            await self._send(request)
            event = await self._next(queue)
        finally:
            self._forget(request.id)
        if isinstance(event, Error):
            raise_for(event)
        if not isinstance(event, expected):
            raise RiffdError(f"expected a {expected.TYPE} reply, got {event.TYPE}", code="protocol")
        return event

    def _register(self, request: Request) -> asyncio.Queue[Event]:
        assert request.id is not None
        queue: asyncio.Queue[Event] = asyncio.Queue()
        self._queues[request.id] = queue
        if lost_with_daemon(request):
            self._lost_with_daemon[request.id] = request
        if self._reader is None:
            self._reader = asyncio.get_running_loop().create_task(self._read())
        return queue

    def _forget(self, request_id: str | None) -> None:
        self._queues.pop(request_id or "", None)
        self._lost_with_daemon.pop(request_id or "", None)

    async def _send(self, request: Request) -> None:
        # Bounded like the wait for events: a DEALER without a peer (e.g. a handshake a CurveZMQ
        # daemon refused) would otherwise wait in send for good. No wait_for here: a job stream's
        # cancel is sent from inside a task being cancelled, and must not be a task of its own.
        frames = wire.encode(request)
        deadline = None if self.timeout_s is None else time.monotonic() + self.timeout_s
        while True:
            try:
                await self._socket.send_multipart(frames, zmq.NOBLOCK)
                return
            except zmq.Again:
                pass
            wait_ms = None if deadline is None else max(0, int((deadline - time.monotonic()) * 1000))
            # pyzmq's stub for the asyncio socket's poll lacks the `flags` it takes (pyzmq 27).
            if not await self._socket.poll(wait_ms, zmq.POLLOUT):  # type: ignore[call-arg]
                raise TimeoutError(f"could not send to {self.endpoint} within {self.timeout_s} s")

    async def _next(self, queue: asyncio.Queue[Event]) -> Event:
        try:
            return await asyncio.wait_for(queue.get(), self.timeout_s)
        except TimeoutError:
            raise TimeoutError(f"no event from {self.endpoint} within {self.timeout_s} s") from None

    async def _read(self) -> None:
        """Hand each event to the request it answers, for as long as the client is open."""
        # What the monitor said before the first request (this task starts with it) can end nothing.
        await self._note_connection(before_any_request=True)
        poller = zmq.asyncio.Poller()
        poller.register(self._socket, zmq.POLLIN)
        poller.register(self._monitor, zmq.POLLIN)
        while True:
            ready = dict(await poller.poll())
            if self._socket in ready:
                self._deliver(await self._socket.recv_multipart())
            elif self._monitor in ready:
                await self._note_connection()

    def _deliver(self, frames: list[bytes]) -> None:
        try:
            event = wire.decode_event(frames)
        except RiffdError as exc:
            log.warning("ignored an undecodable event: %s", exc.message)
            return
        queue = self._queues.get(event.re or "")
        if queue is not None:
            queue.put_nowait(event)

    async def _note_connection(self, *, before_any_request: bool = False) -> None:
        """Read the socket monitor's news; after a drop, the requests whose jobs the daemon took with
        it end with a `connection_lost` error, after the events that came before the drop."""
        while True:
            try:
                message = await self._monitor.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if not self._connection.dropped(parse_monitor_message(message)["event"]) or before_any_request:
                continue
            while True:
                try:
                    self._deliver(await self._socket.recv_multipart(zmq.NOBLOCK))
                except zmq.Again:
                    break
            for request in self._lost_with_daemon.values():
                queue = self._queues.get(request.id or "")
                if queue is not None:
                    queue.put_nowait(connection_lost(request, self.endpoint))
            self._lost_with_daemon.clear()
