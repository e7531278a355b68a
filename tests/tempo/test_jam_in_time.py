"""A jam in time (issues 14 x 15) through a real daemon over ZeroMQ: launched on the bar, conformed
to the timeline as it plays, gapless, each chunk stamped with its beat, its changes reported in
the samples heard. The jam's stream is a drum pattern of known tempo (123 BPM, swung) from a fake
jam host, so the stretch it needs (to 120 BPM: x1.025) is known."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from daemon_harness import DaemonThread, FakeBackend, fake_loader, make_config
from drums import attacks, pattern

from clients import Client
from daemon.audio.types import AudioChunk
from daemon.tempo.positions import PositionMap
from daemon.tempo.warmup import WARMUP
from protocol.messages import Applied, Chunk, Done, Error

RATE = 32000
HOP = 640  # samples per frame, as MusicGen's 50 Hz at 32 kHz
BLOCK_FRAMES = 8  # frames per chunk the fake stream hands out
SECONDS = 30.0  # the conformed jam's length (its stream's)
LOCKED_S = 22.0  # from here on its beats are checked against the grid


class DrumStream:
    """What daemon/jam/job.py needs of a jam stream, playing a drum loop; changes apply at their frame."""

    def __init__(self, audio: np.ndarray) -> None:
        self.audio = audio
        self.frames = 0
        self.sample_rate = RATE
        self.bundle = type("Bundle", (), {"hop_length": HOP})()
        self.stream_settings = type("Settings", (), {"chunk_frames": BLOCK_FRAMES})()
        self.prompts_seen: list[str] = []
        self.applied_samples: list[int] = []
        self._pending: list[Any] = []

    @property
    def emitted_samples(self) -> int:
        return self.frames * HOP

    @property
    def generated_samples(self) -> int:
        return self.frames * HOP

    def submit(self, change: Any) -> None:
        self._pending.append(change)

    def cancel_pending(self) -> list[object]:
        tokens, self._pending = [change.token for change in self._pending], []
        return tokens

    def step(self) -> tuple[list[AudioChunk], list[tuple[object, int]]]:
        applied = [(change.token, self.frames) for change in self._pending]
        self.applied_samples += [frame * HOP for _, frame in applied]
        self._pending = []
        start = self.frames * HOP
        self.frames += BLOCK_FRAMES
        block = self.audio[:, start % self.audio.shape[1]:][:, : BLOCK_FRAMES * HOP]
        return [AudioChunk(start // (BLOCK_FRAMES * HOP), start, block.copy(), RATE)], applied

    def background_work(self) -> bool:
        return False

    def finish(self) -> list[AudioChunk]:
        return []

    def close(self) -> None:
        pass


class DrumHost:
    def __init__(self) -> None:
        audio, _ = pattern(123.0, 16, RATE, swing=0.25, lead_in_s=0.61)
        self.streams: list[DrumStream] = []
        self._audio = audio[:, : audio.shape[1] // (BLOCK_FRAMES * HOP) * BLOCK_FRAMES * HOP]

    def start(self, prompt: str, sampling: object, **_: object) -> DrumStream:
        stream = DrumStream(self._audio)
        stream.prompts_seen.append(prompt)
        self.streams.append(stream)
        return stream


@dataclasses.dataclass
class DrumBackend(FakeBackend):
    host: DrumHost = dataclasses.field(default_factory=DrumHost)

    def jam_host(self, job_id: str = "") -> DrumHost:
        return self.host


@pytest.fixture(scope="module")
def drum_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DaemonThread, DrumBackend]]:
    # Conform's warm-up done first: a jam's beat tracking waits for it (the jam plays on unconformed).
    WARMUP.start()
    assert WARMUP.wait(300) and WARMUP.error is None
    backend = DrumBackend("fake/drums", sample_rate=RATE)
    lock = threading.Lock()

    def loader(model_id: str, device: str) -> FakeBackend:
        with lock:
            return backend if model_id == "fake/drums" else fake_loader(model_id, device)

    daemon = DaemonThread(make_config(tmp_path_factory.mktemp("out"), models=("fake/drums",)), loader=loader).start()
    yield daemon, backend
    daemon.stop()


def _run(client: Client, seconds: float, **options: object) -> tuple[list[Chunk], list[Applied], Done]:
    jam = client.jam("drums", duration_s=seconds, lead_s=30.0, **options)
    chunks: list[Chunk] = []
    applied: list[Applied] = []
    for event in jam:
        if isinstance(event, Chunk):
            chunks.append(event)
            if len(applied) == 0 and event.offset_samples + event.frames >= 12 * RATE:
                applied.append(jam.set(temperature=1.1))
        elif isinstance(event, Done):
            return chunks, applied, event
        elif isinstance(event, Error):
            raise AssertionError(f"jam failed: {event}")
    raise AssertionError("no done")


def test_a_jam_with_a_bpm_is_launched_on_the_bar_and_conformed_without_gaps(
        drum_daemon: tuple[DaemonThread, DrumBackend]) -> None:
    daemon, backend = drum_daemon
    with Client(daemon.zmq, timeout_s=120) as client:
        chunks, applied, done = _run(client, SECONDS, bpm=120.0, launch="bar", model="fake/drums")
    stream = backend.host.streams[-1]
    assert stream.prompts_seen == ["drums, 120 bpm"]
    # Gapless: every chunk starts where the last ended, from 0.
    offsets = [c.offset_samples for c in chunks]
    assert offsets == list(np.cumsum([0] + [c.frames for c in chunks[:-1]]))
    total = offsets[-1] + chunks[-1].frames
    # Launched on a bar, each chunk stamped with the timeline's beat (120 BPM: 2 beats a second).
    launch = chunks[0].beat
    assert launch is not None and launch % 4 == pytest.approx(0.0, abs=1e-6)
    for chunk in chunks:
        assert chunk.beat == pytest.approx(launch + chunk.offset_samples / RATE * 2.0, abs=1e-6)
    # Conformed: the 123 BPM drums play on the timeline's 120 BPM grid once the stretch has locked
    # (the first reading comes after 4 s of input, the phase is taken up within a few bars).
    samples = np.concatenate([c.audio for c in chunks], axis=1)[0]
    assert samples.size == total and abs(total - SECONDS * RATE) < 0.06 * SECONDS * RATE
    found = attacks(samples, RATE, threshold=0.3, hold_s=0.05)
    grid_s = np.arange(LOCKED_S, total / RATE - 0.3, 0.5)  # every beat of the timeline (launched on a bar)
    errors_ms = np.array([(hit[0] - at) * 1000 for at in grid_s if (hit := found[np.abs(found - at) < 0.04]).size])
    print(f"\njam in time: {stream.generated_samples / RATE:.1f} s of 123 BPM in, {total / RATE:.2f} s out; after "
          f"{LOCKED_S:g} s median |error| {np.median(np.abs(errors_ms)):.1f} ms over {errors_ms.size} beats")
    assert errors_ms.size >= 0.9 * grid_s.size and np.median(np.abs(errors_ms)) <= 10.0
    # The change is reported where it is heard: its stream sample mapped into the stretched output.
    assert len(applied) == 1 and len(stream.applied_samples) == 1
    assert 0.02 * RATE < abs(applied[0].offset_samples - stream.applied_samples[0]) < 0.06 * 12 * RATE
    # done: the jam's length in the timeline's beats and bars.
    assert done.frames == total and done.bpm == 120.0 and done.beat == pytest.approx(launch)
    assert done.beats == pytest.approx(total / RATE * 2.0, abs=1e-4) and done.bars == pytest.approx(done.beats / 4)


def test_a_jam_in_time_without_conform_keeps_its_own_length_with_beats(
        drum_daemon: tuple[DaemonThread, DrumBackend]) -> None:
    daemon, backend = drum_daemon
    with Client(daemon.zmq, timeout_s=120) as client:
        chunks, applied, done = _run(client, 3.0, bpm=120.0, launch="beat", conform=False, model="fake/drums")
    offsets = [c.offset_samples for c in chunks]
    assert offsets == list(np.cumsum([0] + [c.frames for c in chunks[:-1]]))
    assert offsets[-1] + chunks[-1].frames == 3 * RATE == done.frames  # not stretched
    launch = chunks[0].beat
    assert launch is not None and launch % 1 == pytest.approx(0.0, abs=1e-6)
    assert chunks[-1].beat == pytest.approx(launch + chunks[-1].offset_samples / RATE * 2.0, abs=1e-6)


def test_bad_jams_in_time_are_refused(drum_daemon: tuple[DaemonThread, DrumBackend]) -> None:
    daemon, _ = drum_daemon
    with Client(daemon.zmq, timeout_s=30) as client:
        for options, says in (({"bars": 4, "bpm": 120.0}, "bars and loop are for takes"),
                              ({"bpm": 1000.0}, "bpm must be within"),
                              ({"quantum": 0, "bpm": 120.0}, "quantum")):
            with pytest.raises(Exception, match=says):
                list(client.jam("drums", model="fake/drums", **options))


def test_positions_map_both_ways_and_extrapolate_at_the_ratio_in_force() -> None:
    positions = PositionMap()
    assert positions.output_of(1000) == 1000 and positions.input_of(1000) == 1000  # nothing conformed: identity
    for block in range(1, 11):
        positions.add(block * 1000, block * 1000 * 1.02, 1.02)
    assert positions.output_of(5500) == round(5500 * 1.02)
    assert positions.input_of(round(5500 * 1.02)) == 5500
    assert positions.output_of(20000) == round(10200 + 10000 * 1.02)  # past the last anchor
