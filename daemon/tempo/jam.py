"""A jam in time: launched on the timeline's beat or bar and conformed to its tempo as it plays.

The jam's own loop (daemon/jam/job.py) makes its chunks; this wraps them. At the first chunk the
launch beat is chosen (as for a take: the next beat or bar at least `lead_s` from now), and with
conform the chunks go through a real-time stretcher (daemon/tempo/stream_conform.py) that pulls
the stream's bars onto the timeline's, gapless. Every chunk carries the timeline beat its first
sample sounds on. The jam's loop reads `positions` to count in what is heard rather than in
what its stream made.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

from daemon.audio.types import AudioChunk
from daemon.tempo.extra import CONFORM_MODULES, needs_extra
from daemon.tempo.positions import PositionMap
from daemon.tempo.stream_conform import StreamConformer, conform_stream
from daemon.tempo.take import TakeState
from daemon.tempo.timeline import TimelineState, launch_beat
from protocol.errors import Unsupported


def jam_in_time(chunks: Iterator[AudioChunk], take: TakeState, *, state: Callable[[], TimelineState | None],
                now_s: Callable[[], float], lead_s: float, positions: PositionMap,
                ready: Callable[[], bool]) -> Iterator[AudioChunk]:
    """The jam's chunks launched on the plan's beat, conformed when the plan says so, stamped with
    their beats; `take` records the launch beat and the frames given out (for `done`)."""
    plan = take.plan
    try:
        first = next((chunk for chunk in chunks if chunk.stage == "final"), None)
        line = state()
        if first is None or line is None:
            yield from chunks  # no audio, or the tempo vanished (checked at submit): as it comes
            return
        take.sample_rate = first.sample_rate
        take.launch_beat = launch_beat(line, plan.launch, now_s() + lead_s, plan.quantum)
        launch_s = line.time_at(take.launch_beat)
        stream = itertools.chain([first], chunks)
        if plan.conform:
            try:
                conformer = StreamConformer(first.sample_rate, first.audio.shape[0], state=state, launch_s=launch_s,
                                            quantum=plan.quantum, prompt_bpm=plan.bpm, positions=positions,
                                            ready=ready)
            except ImportError as exc:  # checked at submit; a library that is there but cannot load
                raise Unsupported(f"{needs_extra('conform', CONFORM_MODULES)} ({exc})") from None
            timed = conform_stream(stream, conformer)
        else:
            timed = _stamped(stream, state, launch_s)
        for chunk in timed:
            take.frames = chunk.offset_samples + chunk.frames
            yield chunk
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:  # stopped early: the jam's loop frees its stream now
            close()


def _stamped(chunks: Iterator[AudioChunk], state: Callable[[], TimelineState | None],
             launch_s: float) -> Iterator[AudioChunk]:
    """Chunks at their own tempo, each with the timeline beat its first sample sounds on."""
    for chunk in chunks:
        if chunk.stage == "final":
            line = state()
            beat = None if line is None else line.beat_at(launch_s + chunk.offset_samples / chunk.sample_rate)
            yield AudioChunk(chunk.index, chunk.offset_samples, chunk.audio, chunk.sample_rate, beat=beat)
