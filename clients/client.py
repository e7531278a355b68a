"""The Python client over ZeroMQ: one method per request, events as protocol.messages objects.

    from clients import Client
    with Client("tcp://127.0.0.1:7401") as client:
        for event in client.generate("warm analog pad", duration_s=8, seed=1):
            ...  # Accepted, Started, Progress, Chunk (.audio float32 [channels, frames]), then Done or Error

A Client is one DEALER socket; it is not thread-safe (use one per thread, or the asyncio
client). Several job streams of one client may be read interleaved: events are sorted by the
request id they answer.
"""

from __future__ import annotations

import collections
import logging
import secrets
import time
from typing import Any

import zmq
from zmq.utils.monitor import recv_monitor_message

from clients.connection import MONITORED_EVENTS, ConnectionWatch, connection_lost, lost_with_daemon
from clients.curve import CurveClientKeys
from clients.job_requests import JobRequests, PromptWeights, jam_request, new_id, prompts_request
from clients.joining import ChunkJoiner, Rendered
from protocol import wire
from protocol.errors import RiffdError
from protocol.messages import (
    TERMINAL_EVENTS, Accepted, Applied, Cancel, Clock, Error, Event, GetClock, GetStatus, JamSet,
    JamSnapshot, JamStart, JamStop, ListModels, LoadModel, Models, Ok, Request, SetTempo, Snapshot, Status, Subscribe,
    UnloadModel, Unsubscribe,
)

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "tcp://127.0.0.1:7401"


def connect_dealer(socket: zmq.Socket, endpoint: str, curve: CurveClientKeys | None) -> None:
    """Set up a client's DEALER `socket` (sync or asyncio) and connect it to the daemon at `endpoint`."""
    socket.setsockopt(zmq.LINGER, 0)
    # A routing id of our own, kept across reconnects: a daemon restarted on the same folder
    # sends this client the events of the jobs it resumes for it.
    socket.setsockopt(zmq.IDENTITY, b"riffd-" + secrets.token_hex(8).encode())
    if curve is not None:
        curve.apply(socket)  # a daemon that requires CurveZMQ ignores clients without keys
    socket.connect(endpoint)


def raise_for(event: Error) -> None:
    """Raise the RiffdError an error event carries (its code kept)."""
    raise RiffdError(event.message, code=event.code)


class JobStream:
    """The events of one job, in order; the last is Done or Error.

    An iterator: it can be read in parts (`next(stream)`, several `for` loops). Used as a
    context manager, leaving the block before the job ends cancels it.
    """

    def __init__(self, client: "Client", request: Request) -> None:
        self._client = client
        self.request = request
        self.job: str | None = getattr(request, "job", None)
        self.finished = False

    def __iter__(self) -> "JobStream":
        return self

    def __next__(self) -> Event:
        if self.finished:
            raise StopIteration
        event = self._client._next_event(self.request.id)
        if isinstance(event, Accepted):
            self.job = event.job
        if isinstance(event, TERMINAL_EVENTS):
            self.finished = True
            self.job = self.job or event.job
            self._client._forget(self.request.id)
        return event

    def __enter__(self) -> "JobStream":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def cancel(self) -> None:
        """Ask the daemon to cancel this job (the stream then ends with an error `cancelled`). Before
        the daemon has named the job (its `accepted`), this reads up to that event first."""
        if self.job is None and not self.finished:
            try:
                for _ in self:  # events before `accepted` (an error refusing the request ends the stream)
                    if self.job is not None:
                        break
            except TimeoutError:
                return  # a daemon that never answered has no job to cancel
        if self.job is not None and not self.finished:
            self._client._send(Cancel(job=self.job, id=new_id()), expect_reply=False)

    def close(self) -> None:
        """Stop listening; the job is cancelled if it has not ended."""
        if not self.finished:
            self.cancel()
            self.finished = True
        self._client._forget(self.request.id)

    def collect(self) -> Rendered:
        """Read to the end and join the chunks (the final stage: a Jukebox preview is skipped);
        raise RiffdError if the job fails. A job a restarted daemon resumed is joined from its new
        start (clients.joining)."""
        joiner = ChunkJoiner()
        for event in self:
            joiner.add(event)
            result = joiner.ended(event)
            if result is not None:
                return result
        raise RiffdError("the job stream ended without a result", code="protocol")


class JamHandle(JobStream):
    """A running jam: iterate it for its events (chunks forever, until `stop()` or an error), and
    steer it while it plays. `set` and `prompts` return the `applied` event (its `offset_samples` is
    where the change is heard from); the chunks that arrive meanwhile wait in the stream, in order.

        with client.jam("dub techno", seed=7) as jam:
            for event in jam:
                ...  # Chunk events: play event.audio
                jam.set(temperature=1.2)
                jam.prompts({"dub techno": 0.7, "tabla": 0.3})
    """

    request: JamStart

    def __init__(self, client: "Client", request: JamStart) -> None:
        super().__init__(client, request)
        self.jam = request.job or ""

    def set(self, **changes: Any) -> Applied:
        """Change the prompt, sampling controls or gain (see `Client.jam_set`)."""
        return self._client.jam_set(self.jam, **changes)

    def prompts(self, prompts: PromptWeights) -> Applied:
        """Blend weighted prompts: `{"dub techno": 0.7, "tabla": 0.3}` (weights are relative)."""
        return self._client.jam_prompts(self.jam, prompts)

    def snapshot(self, name: str | None = None) -> Snapshot:
        """Save the jam's state under the daemon's --out/jams; `client.jam(resume=name)` continues it."""
        return self._client.jam_snapshot(self.jam, name)

    def stop(self) -> Ok:
        """Fade out and end: the stream then yields the last chunks and `done`."""
        return self._client.jam_stop(self.jam)


class Client(JobRequests[JobStream]):
    """A connection to a riffd daemon's ZeroMQ endpoint; job requests (generate, continue_,
    jukebox_sample, jukebox_upsample) come from JobRequests and return JobStreams.

    `timeout_s` bounds the wait for each event (None: wait forever); a silent daemon raises
    TimeoutError.
    """

    def __init__(self, endpoint: str = DEFAULT_ENDPOINT, *, timeout_s: float | None = 60.0,
                 curve: CurveClientKeys | None = None) -> None:
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.DEALER)
        # Watched from before it connects, so that the first handshake is seen (clients.connection).
        self._monitor = self._socket.get_monitor_socket(MONITORED_EVENTS)
        self._connection = ConnectionWatch()
        self._poller = zmq.Poller()
        self._poller.register(self._socket, zmq.POLLIN)
        self._poller.register(self._monitor, zmq.POLLIN)
        connect_dealer(self._socket, endpoint, curve)
        self._pending: dict[str, collections.deque[Event]] = {}
        self._lost_with_daemon: dict[str, Request] = {}  # waiting requests whose jobs end if the daemon goes

    def jam(self, prompt: str = "", *, model: str | None = None, **options: Any) -> JamHandle:
        """Start a jam (options: JamStart's fields: seed, lead_s, play, gain, job, resume...)."""
        request = jam_request(prompt, model=model, **options)
        request.validate()
        self._send(request)
        return JamHandle(self, request)

    # Any running jam, by id (its own handle's methods call these).
    def jam_set(self, jam: str, *, prompt: str | None = None, temperature: float | None = None,
                top_k: int | None = None, top_p: float | None = None, guidance_scale: float | None = None,
                gain: float | None = None, at_samples: int | None = None) -> Applied:
        """Change a jam's prompt, sampling controls or gain (None: unchanged); the `applied` event says
        from which sample of the jam's audio (`at_samples`: from that one, for scripted changes)."""
        return self._call(JamSet(jam=jam, prompt=prompt, temperature=temperature, top_k=top_k, top_p=top_p,
                                 guidance_scale=guidance_scale, gain=gain, at_samples=at_samples, id=new_id()),
                          Applied)

    def jam_prompts(self, jam: str, prompts: PromptWeights) -> Applied:
        return self._call(prompts_request(jam, prompts), Applied)

    def jam_snapshot(self, jam: str, name: str | None = None) -> Snapshot:
        return self._call(JamSnapshot(jam=jam, name=name, id=new_id()), Snapshot)

    def jam_stop(self, jam: str) -> Ok:
        return self._call(JamStop(jam=jam, id=new_id()), Ok)

    # Control requests: each returns its one reply, or raises RiffdError.
    def cancel(self, job: str) -> Ok:
        return self._call(Cancel(job=job, id=new_id()), Ok)

    def status(self) -> Status:
        return self._call(GetStatus(id=new_id()), Status)

    def clock(self) -> Clock:
        """The daemon's timeline: tempo, beat, phase, Link peers (issue 15)."""
        return self._call(GetClock(id=new_id()), Clock)

    def tempo(self, bpm: float) -> Clock:
        """Set the tempo of the Link session (every peer follows) or of the daemon's own timeline."""
        return self._call(SetTempo(float(bpm), id=new_id()), Clock)

    def models(self) -> Models:
        return self._call(ListModels(id=new_id()), Models)

    def load(self, model: str) -> Ok:
        return self._call(LoadModel(model=model, id=new_id()), Ok)

    def unload(self, model: str) -> Ok:
        return self._call(UnloadModel(model=model, id=new_id()), Ok)

    def subscribe(self, port: int, host: str | None = None) -> Ok:
        """Have the daemon send every job event as OSC to host:port (UDP; host 127.0.0.1 by default)."""
        return self._call(Subscribe(host=host, port=port, id=new_id()), Ok)

    def unsubscribe(self, port: int, host: str | None = None) -> Ok:
        return self._call(Unsubscribe(host=host, port=port, id=new_id()), Ok)

    def close(self) -> None:
        self._socket.disable_monitor()
        self._monitor.close()
        self._socket.close()
        self._context.term()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # Plumbing.
    def _stream(self, request: Request) -> JobStream:
        request.validate()
        self._send(request)
        return JobStream(self, request)

    def _call(self, request: Request, expected: type[Event]) -> Any:
        request.validate()
        self._send(request)
        try:
            event = self._next_event(request.id)
        finally:
            self._forget(request.id)
        if isinstance(event, Error):
            raise_for(event)
        if not isinstance(event, expected):
            raise RiffdError(f"expected a {expected.TYPE} reply, got {event.TYPE}", code="protocol")
        return event

    def _send(self, request: Request, *, expect_reply: bool = True) -> None:
        assert request.id is not None
        self._note_connection()  # a drop before this request is none of its business
        if expect_reply:
            self._pending[request.id] = collections.deque()
            if lost_with_daemon(request):
                self._lost_with_daemon[request.id] = request
        # A DEALER with no connected peer blocks in send, and one whose handshake the daemon refused
        # (a CurveZMQ daemon and a client without keys) may stay without a peer for good: the send
        # is bounded by the same timeout as the wait for events.
        # A peer can also go between the poll and the send: then the send says Again and we wait on.
        frames = wire.encode(request)
        deadline = None if self.timeout_s is None else time.monotonic() + self.timeout_s
        while True:
            wait_ms = None if deadline is None else max(0, int((deadline - time.monotonic()) * 1000))
            if not self._socket.poll(wait_ms, zmq.POLLOUT):
                raise TimeoutError(f"could not send to {self.endpoint} within {self.timeout_s} s")
            try:
                self._socket.send_multipart(frames, zmq.NOBLOCK)
                return
            except zmq.Again:
                continue

    def _forget(self, request_id: str | None) -> None:
        self._pending.pop(request_id or "", None)
        self._lost_with_daemon.pop(request_id or "", None)

    def _next_event(self, request_id: str | None) -> Event:
        """The next event answering `request_id`, reading (and sorting) the socket as needed."""
        queue = self._pending.setdefault(request_id or "", collections.deque())
        deadline = None if self.timeout_s is None else time.monotonic() + self.timeout_s
        while not queue:
            wait_ms = None if deadline is None else max(0, int((deadline - time.monotonic()) * 1000))
            ready = dict(self._poller.poll(wait_ms))
            if not ready:
                raise TimeoutError(f"no event from {self.endpoint} within {self.timeout_s} s")
            if self._socket in ready:
                self._sort(wire.decode_event(self._socket.recv_multipart()))
            else:
                self._note_connection()
        return queue.popleft()

    def _sort(self, event: Event) -> None:
        target = self._pending.get(event.re or "")
        if target is not None:
            target.append(event)
        else:
            log.debug("dropped a %s event for request %s nobody waits for", event.TYPE, event.re)

    def _note_connection(self) -> None:
        """Read the socket monitor's news; after a drop, the requests whose jobs the daemon took with
        it end with a `connection_lost` error, after the events that came before the drop."""
        while self._monitor.poll(0):
            if not self._connection.dropped(recv_monitor_message(self._monitor)["event"]):
                continue
            while self._socket.poll(0):
                self._sort(wire.decode_event(self._socket.recv_multipart()))
            for request in self._lost_with_daemon.values():
                self._sort(connection_lost(request, self.endpoint))
            self._lost_with_daemon.clear()
