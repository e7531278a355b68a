"""Continuous batching: the windows of concurrent jobs share each decode step of one decoder.

A decode step is bound by reading the weights, so stepping N streams together costs little
more than one. Each stream keeps its own cache, sampling settings, guidance scale, window plan
and random generator (its `WindowSampler`): it joins at any step, its prefill done on its own
thread beside the running batch (where the prefill is a single step at slot 0, a text prompt's
with the native step, that step rides the next shared step instead), and leaves when its window
ends, its job is cancelled or its consumer stops reading.

There is no batch thread: a stream's consumer (the job's worker thread) that needs its next
column while no step is running runs the next shared step itself, for every stream with a column
to feed, and the others find their columns queued when they come to read. Alone in the batch, a
job thus steps on its own thread exactly as unbatched decoding does (no hand-over between
threads per step, no second thread contending for the cores and the GIL); together, whichever
consumer is free steps for all while the others decode audio.

A stream's columns are exactly those of the same window decoded alone: `MusicgenDecoder.step_streams`
gives each stream the logits `step` gives it alone, and the stream samples them with its own
generator. Admission is bounded by a number of streams and by the bytes of their KV caches;
waiting streams are admitted highest priority first, first come first served within a priority.

A job whose first audio is still to come goes first on the cores too: the codec work of the
jobs at its priority or below waits (`codec_turn`, at most `codec_yield_s`) until its first chunk
is out. Their columns meanwhile queue for them (the joining job's thread steps for everyone), so
nothing of theirs is lost or changed, only their next chunk comes a little later; on 2 cores their
codec decodes beside the shared steps slowed the joining job's first audio 2.5-fold.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field

import torch

from daemon.models.musicgen.conditioning import Conditioning
from daemon.models.musicgen.decoder import MusicgenDecoder
from daemon.models.musicgen.delay import delays
from daemon.models.musicgen.handoff import (Handoff, NextWindow, Warming, cache_positions, ride_columns, share_condition,
                                            stage_view, staged_view, window_stage)
from daemon.models.musicgen.kv_cache import KVCache
from daemon.models.musicgen.loader import MusicgenBundle
from daemon.models.musicgen.loop import StopFn, WindowSampler, check_stop, next_columns, plan_window, window_sampler
from daemon.models.musicgen.step_draw import StepDraw
from daemon.models.musicgen.stream_timing import StepTimer
from protocol.errors import Cancelled, OutOfMemory
from protocol.params import GenerationParams

log = logging.getLogger(__name__)

#: torch.inference_mode's own guard, which its context manager enters and leaves: the same thread-local
#: mode, without the manager's Python (its construction, checks and two more calls). Entered and left
#: once a shared step, with the caches cold from the native step's weights and the codec: ~35 us to
#: enter and ~16 to leave through torch.inference_mode, ~21 and ~15 through this (Zen 4, 2 cores).
#: A private name, so a PyTorch without it (the requirement is open) takes the manager instead.
_InferenceMode = getattr(torch._C, "_InferenceMode", None) or torch.inference_mode

#: How often a stream waiting for admission looks at its stop flag.
ADMISSION_POLL_S = 0.05
#: The longest a job's codec work waits for another job's first audio (`StepBatch.codec_turn`).
CODEC_YIELD_S = 0.5


@dataclass(eq=False)
class Listener:
    """A batched job's audio side, across its windows: its priority, and whether its first chunk
    is still to come (then the codec work of jobs at its priority or below waits for it)."""

    priority: int
    first_pending: bool = True


@dataclass(frozen=True)
class BatchSnapshot:
    """Who is stepping together now, and who waits for a place."""

    streams: tuple[str, ...]  # labels (job ids) of admitted streams, in join order
    waiting: tuple[str, ...]  # labels waiting for admission, in admission order
    cache_bytes: int  # KV-cache bytes the admitted streams hold
    steps: int  # shared steps taken since the batch was made


@dataclass(eq=False)
class BatchStream:
    """One window in the batch: a source of columns with its own cache, sampler (settings, guidance,
    pattern, random generator) and position. Fields past `out` belong to the thread running a
    shared step (under the batch's lock between steps).

    `between_steps(action)` runs `action` on the stepping thread before this stream's next step, when
    no step uses its cache: the place to swap its condition (`MusicgenDecoder.set_condition`) or
    change its sampler's settings mid-stream (a jam's live changes).

    With the native step, `cache` is a view of the window-sized cache `whole` laid out for the positions
    so far, moved to a wider stage as the window fills (`make_room`; handoff.WINDOW_STAGE_POSITIONS).
    """

    label: str
    sampler: WindowSampler
    cache: KVCache
    first_slot: int  # cache slot of the window's first sampled column
    should_stop: StopFn | None
    timed: StepTimer | None = None  # each shared step it is in: see StepBatch.columns
    out: deque[torch.Tensor | BaseException] = field(default_factory=deque)  # made, not yet read
    step: int = 1  # the step whose column the next shared step makes (0: its prefill is that step)
    pending: torch.Tensor | None = None  # the column to feed next, at slot first_slot + step - 1
    leaving: bool = False
    stepping: bool = False  # inside the shared step running now
    left: threading.Event = field(default_factory=threading.Event)
    actions: queue.SimpleQueue[Callable[[], None]] = field(default_factory=queue.SimpleQueue)
    successor: Warming | None = None  # the job's next window, its context riding this one's steps
    whole: KVCache | None = None  # the window-sized cache `cache` is a stage view of (None: `cache` is it)
    stage: int = 0  # the stages' positions (0: no stages)

    def between_steps(self, action: Callable[[], None]) -> None:
        self.actions.put(action)

    def make_room(self) -> None:
        """Before a step: where the slot it writes is past `cache`'s end, move the slots so far to the next
        stage (the window's own layout last), the condition the rows step under with them."""
        position = self.first_slot + self.step - 1
        if self.whole is not None and position >= self.cache.max_positions:
            self.cache = staged_view(self.whole, self.cache, position, position + 1, self.stage)


@dataclass(order=True)
class _Ticket:
    """A stream's place in the admission queue: highest priority first, then arrival."""

    sort_key: tuple[int, int]
    label: str = field(compare=False)
    cache_bytes: int = field(compare=False)
    admitted: bool = field(default=False, compare=False)


class StepBatch:
    """Streams of one `MusicgenDecoder` sharing its decode steps."""

    def __init__(self, decoder: MusicgenDecoder, *, max_streams: int, max_cache_bytes: int,
                 codec_yield_s: float = CODEC_YIELD_S) -> None:
        if max_streams < 1:
            raise ValueError(f"a batch holds at least one stream, got {max_streams}")
        self.decoder = decoder
        self.max_streams = max_streams
        self.max_cache_bytes = max_cache_bytes
        self._lock = threading.Condition()
        self._streams: list[BatchStream] = []
        self._waiting: list[_Ticket] = []
        self._cache_bytes = 0
        self._admitted = 0
        self._arrivals = itertools.count()
        self._steps = 0
        self._stepping = False  # a consumer is running a shared step now
        self.codec_yield_s = codec_yield_s
        self._first_pending: list[Listener] = []  # of admitted windows, whose job's first audio is still to come
        self._step_draw = StepDraw.build(decoder)  # a shared step's native calls as one, where it runs

    def snapshot(self) -> BatchSnapshot:
        with self._lock:
            return BatchSnapshot(tuple(s.label for s in self._streams),
                                 tuple(t.label for t in sorted(self._waiting)), self._cache_bytes, self._steps)

    def columns(self, bundle: MusicgenBundle, cond: Conditioning, prompt: torch.Tensor | None, new_frames: int,
                params: GenerationParams, rng: torch.Generator | None, should_stop: StopFn | None = None, *,
                label: str = "", priority: int = 0, on_join: Callable[[BatchStream], None] | None = None,
                timed: StepTimer | None = None,
                listener: Listener | None = None, handoff: Handoff | None = None,
                next_window: NextWindow | None = None) -> Iterator[torch.Tensor]:
        """Each new column `[B, K]` of a window, stepped with the batch; `loop.decoder_columns`'s contract.

        Blocks until the window is admitted (raising Cancelled if stopped meanwhile). Closing
        the iterator leaves the batch within one step and frees the cache. `on_join` gets the
        stream's handle once its prefill is done (see `BatchStream.between_steps`). `timed(step,
        seconds, riding)` learns what made each column: the prefill (step 0, on this thread), then each
        shared step it was in (on the thread that ran it, before the column is handed over), with the
        next windows' context columns that rode in that step (0 for the prefill).
        `listener`: the job's audio side (see `codec_turn`); from admission until `first_audio`,
        others' codec work waits for this window's job.

        `handoff`: the job's hand-off (handoff.py). A window the one before warmed starts from
        the cache it left there, without a prefill; with `next_window`, this window warms that one
        (its context columns ride this window's steps, its cache bytes admitted with this one's).
        """
        decoder = self.decoder
        pattern, first_slot = plan_window(bundle, cond, prompt, new_frames)
        sampler = window_sampler(bundle, cond, pattern, params, rng, decoder.vocab)
        rows, positions = cond.hidden_states.shape[0], first_slot + pattern.steps - 1
        cross_len = 0 if cond.prefix else cond.hidden_states.shape[1]
        warmed = handoff.take() if handoff is not None else None
        if warmed is not None and not warmed.ready_for(pattern.inputs, cond):
            log.error("%s: the warmed window does not hold this window's context; prefilling it", label or "window")
            warmed.close()
            warmed = None
        if handoff is None:
            next_window = None
        cache_bytes = decoder.cache_bytes(rows, positions, cross_len)
        if next_window is not None:
            cache_bytes += decoder.cache_bytes(rows, cache_positions(next_window.window, bundle), cross_len)
        try:
            ticket = self._admit(label, priority, cache_bytes, should_stop)
        except BaseException:
            if warmed is not None:
                warmed.close()
            raise
        first_pending = self._await_audio(listener)
        try:
            with ExitStack() as owned:
                # The native step's rows step in stages of the window's cache (`BatchStream.make_room`); the
                # other steps (the compiled one reads whole buffers) in the window-sized cache.
                stage = window_stage() if decoder.native is not None else 0
                if warmed is not None:
                    owned.enter_context(warmed.stack)
                    if stage > 0:
                        # the riding view as it is where it is the window's first stage: no move at the seam
                        whole = warmed.whole or warmed.cache
                        cache = staged_view(whole, warmed.cache, warmed.slot, warmed.slot + 1, stage)
                    else:
                        whole = cache = warmed.handed()
                else:
                    whole = owned.enter_context(decoder.open_cache(rows, positions))
                    cache = stage_view(whole, first_slot, stage)  # what the prefill fills
                stream = BatchStream(label, sampler, cache, first_slot, should_stop, timed,
                                     whole=whole if cache is not whole else None, stage=stage)
                owned.callback(_free_view, stream, whole)
                # The prefill runs here, on the joining job's thread, while the batch steps on.
                started = time.perf_counter()
                column: torch.Tensor | None = None
                if warmed is not None:
                    # The context is in the cache already: its last column rides the next shared
                    # step, which makes column 0 (as a text prompt's window joins, below).
                    stream.step, feed = 0, pattern.inputs[..., -1]
                elif decoder.prefill_is_step(cond, pattern.inputs):
                    # Its prefill is the step at slot 0: the window joins with its first input and
                    # the next shared step makes column 0 (the same logits, row-independent). A
                    # native call of its own would wait for the running step, then slow the next.
                    decoder.set_condition(cache, cond)
                    stream.step, feed = 0, pattern.inputs[..., 0]
                else:
                    column = feed = sampler.next_column(0, decoder.prefill(cache, cond, pattern.inputs))
                if timed is not None:
                    timed(0, time.perf_counter() - started, 0)
                if next_window is not None and handoff is not None:
                    stream.successor = handoff.warming = self._warm(bundle, next_window, rows,
                                                                    cache if next_window.cond is cond else None)
                if on_join is not None:
                    on_join(stream)
                first_step = stream.step
                if first_step < sampler.steps:
                    self._join(stream, feed)
                try:
                    if column is not None:
                        yield column
                        check_stop(should_stop)
                    for _ in range(first_step, sampler.steps):
                        item = self._next(stream)
                        if isinstance(item, BaseException):
                            raise item
                        yield item
                        check_stop(should_stop)
                finally:
                    self._leave(stream)
        finally:
            if first_pending:
                self.first_audio(listener)
            self._release(ticket)

    def _warm(self, bundle: MusicgenBundle, next_window: NextWindow, rows: int, same_condition: KVCache | None) -> Warming:
        """The next window's cache, its condition set and its BOS column to feed with the next shared step.

        `same_condition`: a cache conditioned alike (the window warming it), whose cross-attention
        keys and values it shares: nothing writes them, and computing them again cost ~25-40 ms
        of musicgen-small before the job's first step (its first audio waited)."""
        stack = ExitStack()
        try:
            cache = stack.enter_context(self.decoder.open_cache(rows, cache_positions(next_window.window, bundle)))
            if same_condition is not None:
                share_condition(same_condition, cache)
            else:
                self.decoder.set_condition(cache, next_window.cond)
        except BaseException:
            stack.close()
            raise
        prompts = next_window.cond.batch_size
        bos = torch.full((prompts, bundle.num_codebooks), bundle.pad_token_id, dtype=torch.long, device=bundle.device)
        return Warming.riding(next_window, cache, stack, delays(bundle.num_codebooks, bundle.audio_channels).to(bundle.device),
                              bundle.pad_token_id, pending=[bos], columns=ride_columns(self.decoder))

    # Who goes first on the cores.
    def listener(self, priority: int) -> Listener:
        """A job's audio side, to pass to `columns` (each window) and `codec_turn`."""
        return Listener(priority)

    def codec_turn(self, listener: Listener) -> None:
        """Returns when `listener`'s job may run its codec: at once, unless an admitted window of
        another job at the same or a higher priority waits for its first audio; then once that
        audio is out, or after `codec_yield_s`. A job waiting for its own first audio never waits."""
        if listener.first_pending:
            return
        deadline = time.monotonic() + self.codec_yield_s
        with self._lock:
            while any(other is not listener and other.priority >= listener.priority for other in self._first_pending):
                left_s = deadline - time.monotonic()
                if left_s <= 0:
                    return
                self._lock.wait(left_s)

    def first_audio(self, listener: Listener | None) -> None:
        """`listener`'s job has its first audio (or gave up on it): others' codec work goes on."""
        if listener is None:
            return
        with self._lock:
            listener.first_pending = False
            while listener in self._first_pending:
                self._first_pending.remove(listener)
            self._lock.notify_all()

    def _await_audio(self, listener: Listener | None) -> bool:
        """Count an admitted window's job among those waiting for their first audio, if it is."""
        if listener is None or not listener.first_pending:
            return False
        with self._lock:
            self._first_pending.append(listener)
        return True

    # Admission.
    def _admit(self, label: str, priority: int, cache_bytes: int, should_stop: StopFn | None) -> _Ticket:
        if cache_bytes > self.max_cache_bytes:
            raise OutOfMemory(f"this window's KV cache needs {cache_bytes / 2**20:.0f} MiB, over the batch's "
                              f"{self.max_cache_bytes / 2**20:.0f} MiB (--batch-memory-mb)")
        ticket = _Ticket((-priority, next(self._arrivals)), label, cache_bytes)
        with self._lock:
            self._waiting.append(ticket)
            try:
                while not self._fits_first(ticket):
                    self._lock.wait(ADMISSION_POLL_S)
                    check_stop(should_stop)
            except BaseException:
                self._waiting.remove(ticket)
                self._lock.notify_all()
                raise
            self._waiting.remove(ticket)
            ticket.admitted = True
            self._admitted += 1
            self._cache_bytes += cache_bytes
            self._lock.notify_all()
        return ticket

    def _fits_first(self, ticket: _Ticket) -> bool:
        """Whether `ticket` is first in line and there is room for it (called under the lock)."""
        return (min(self._waiting) is ticket and self._admitted < self.max_streams
                and self._cache_bytes + ticket.cache_bytes <= self.max_cache_bytes)

    def _release(self, ticket: _Ticket) -> None:
        with self._lock:
            if ticket.admitted:
                self._admitted -= 1
                self._cache_bytes -= ticket.cache_bytes
                ticket.admitted = False
            self._lock.notify_all()

    # Joining and leaving the shared step.
    def _join(self, stream: BatchStream, column: torch.Tensor) -> None:
        with self._lock:
            stream.pending = column
            self._streams.append(stream)
            self._lock.notify_all()

    def _leave(self, stream: BatchStream) -> None:
        """Take `stream` out of the batch; returns once no step is using its cache."""
        with self._lock:
            if stream not in self._streams:
                return
            stream.leaving = True
            if not stream.stepping:
                self._streams.remove(stream)
                self._lock.notify_all()
                return
        stream.left.wait()

    def _next(self, stream: BatchStream) -> torch.Tensor | BaseException:
        """`stream`'s next column (or the error of the step that was to make it): made already, made
        by the step running now, or by the shared step this thread runs."""
        while True:
            with self._lock:
                while not stream.out and self._stepping:
                    self._lock.wait()
                if stream.out:
                    return stream.out.popleft()
                ready = self._ready()
                if stream not in ready:  # its last step saw its job stopped: no step makes another column
                    return Cancelled("generation cancelled")
                self._stepping = True
                for other in ready:
                    other.stepping = True
            try:
                self._step(ready)
            finally:
                with self._lock:
                    self._stepping = False
                    self._steps += 1
                    for other in ready:
                        other.stepping = False
                        if other.leaving:
                            self._streams.remove(other)
                            other.left.set()
                    self._lock.notify_all()

    def _ready(self) -> list[BatchStream]:
        return [s for s in self._streams if s.pending is not None and not s.leaving]

    def _step(self, streams: list[BatchStream]) -> None:
        """One shared step: feed each stream's pending column, sample its next one; the next windows
        its streams warm feed their due context columns in the same step (their logits unused), each
        column as a window of its own over the same cache at its own slot."""
        columns = [s.pending for s in streams]
        assert all(c is not None for c in columns)
        warming = [(w, due) for w, due in ((s.successor, s.successor.due()) for s in streams if s.successor is not None)
                   if due]
        fed = columns + [column for _, due in warming for column in due]
        started = time.perf_counter()
        try:
            for stream in streams:
                while not stream.actions.empty():
                    stream.actions.get()()
                stream.make_room()  # after a swap there: its view's condition moves on with the slots
            for warm, due in warming:
                warm.make_room(len(due))
            caches = [s.cache for s in streams] + [w.cache for w, due in warming for _ in due]
            positions = [s.first_slot + s.step - 1 for s in streams] + [w.slot + i for w, due in warming
                                                                           for i in range(len(due))]
            samplers = [s.sampler for s in streams]
            # The common step in one native call, outside the inference mode (no tensor op there needs it);
            # else the calls one by one: the same codes.
            codes = self._step_draw.columns(caches, fed, positions, samplers) if self._step_draw is not None else None  # type: ignore[arg-type]
            if codes is not None:
                made = [s.sampler.pattern.column(s.step, c, owned=True) for s, c in zip(streams, codes, strict=True)]
            else:
                with _InferenceMode(True):
                    logits = self.decoder.step_streams(caches, fed, positions,  # type: ignore[arg-type]
                                                       logit_windows=len(streams))  # the warming windows' logits are never read
                    made = next_columns(samplers, [s.step for s in streams], logits[:len(streams)])
        except BaseException as exc:  # noqa: BLE001 - handed to every stream's consumer, which raises it
            # As text: a log record holding `exc` would keep the step's tensors alive (see runner.py).
            log.error("a shared decode step failed: %s", f"{type(exc).__name__}: {exc}")
            for stream in streams:
                stream.pending = None
                stream.out.append(exc)
            return
        took_s = time.perf_counter() - started
        riding = len(fed) - len(columns)
        for warm, due in warming:
            warm.fed_queued(len(due))
        for stream, column in zip(streams, made, strict=True):
            if stream.timed is not None:
                stream.timed(stream.step, took_s, riding)
            stream.out.append(column)
            if stream.successor is not None:
                stream.successor.offer(stream.sampler.pattern.prompt_frames + 1 + stream.step, column)
            stream.step += 1
            stopped = stream.should_stop is not None and stream.should_stop()
            stream.pending = None if stream.step >= stream.sampler.steps or stopped else column


def _free_view(stream: BatchStream, whole: KVCache) -> None:
    """Drop the stage view a window ended in (its references to the window's buffers and its native bindings)."""
    if stream.cache is not whole:
        stream.cache.free()
