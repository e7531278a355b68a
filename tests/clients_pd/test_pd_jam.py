"""riffd-jam.pd for real: `pd -nogui` jams against a real daemon (debug/musicgen, 1 s windows): start,
a set, weighted prompts from slots and a weight, a snapshot, stop; what its outlets played is checked
against the chunk files the daemon wrote. Against a UDP socket playing the daemon: a jam in time's
end, and a resume after options it must leave out."""

from __future__ import annotations

import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from daemon_harness import DaemonThread, make_config
from test_pd import PD_RATE, _log, pd_beside, run_pd

from protocol import osc
from protocol.messages import Accepted, Chunk, Done, JamStart, JamStop, Request, Started

pytestmark = pytest.mark.skipif(shutil.which("pd") is None, reason="Pure Data (puredata-core) not installed")


@pytest.fixture(scope="module")
def pd_jam_daemon(tmp_path_factory: pytest.TempPathFactory, riffd_cache: Path) -> Iterator[DaemonThread]:
    config = make_config(tmp_path_factory.mktemp("pd-jam-out"), models=("debug/musicgen",), cache_dir=riffd_cache,
                         jam_lead_s=0.5, jam_window_s=1.0, jam_context_s=0.3)
    daemon = DaemonThread(config).start()
    yield daemon
    daemon.stop()


def test_pd_jams_steers_saves_and_plays_it_gaplessly(pd_jam_daemon: DaemonThread, tmp_path: Path) -> None:
    log, played = tmp_path / "log.txt", tmp_path / "played.wav"
    console = run_pd("riffd-jam-test.pd", f"riffd-jam-test {pd_jam_daemon.osc_port} {log} {played}", timeout_s=60)
    events = [event for event in _log(log) if event[0] != "connected"]
    assert ["timeout"] not in events, (events, console)
    assert "error" not in console, console
    kinds = [event[0] for event in events]
    assert kinds[:2] == ["accepted", "started"] and events[0][1] == "pdjam", events
    # One set, two prompt slots and one weight: four changes, each applied after the one before.
    applied = [int(event[2]) for event in events if event[0] == "applied"]
    assert len(applied) == 4 and applied == sorted(applied), events
    snapshot = next(event for event in events if event[0] == "snapshot")
    assert snapshot[1] == "pdjam" and Path(snapshot[2]).is_file() and snapshot[2].endswith("pdsnap.riffdjam")
    done = next(event for event in events if event[0] == "done")
    assert kinds[-1] == "ended" and kinds.index("done") < kinds.index("ended")
    chunks = [event for event in events if event[0] == "chunk"]
    offsets = [int(event[4]) for event in chunks]
    frames = [int(event[5]) for event in chunks]
    assert offsets == [sum(frames[:i]) for i in range(len(frames))], "contiguous chunks"
    assert int(done[-2]) == sum(frames) and sum(frames) > 2 * 32000  # past two slides

    # What the outlets played: the chunks in order at Pd's rate, seamless, and nothing after the end.
    audio = np.concatenate([sf.read(event[3], dtype="float32")[0] for event in chunks])
    _assert_played_whole(played, audio, 32000)


def _assert_played_whole(played: Path, audio: np.ndarray, jam_rate: int) -> None:
    """`played` (what the outlets recorded) is `audio` at Pd's rate, seamless, to its last sample and no further."""
    both, rate = sf.read(played, dtype="float32")
    assert rate == PD_RATE
    np.testing.assert_array_equal(both[:, 0], both[:, 1])  # a mono jam on both outlets
    out = both[:, 0]
    reference = np.interp(np.arange(round(len(audio) * PD_RATE / jam_rate)) * jam_rate / PD_RATE,
                          np.arange(len(audio)), audio)
    assert len(out) > len(reference), f"Pd quit {len(out)} samples in, before the jam's {len(reference)} played"
    # Aligned on its first half second, then every half second in order (Pd's phasor~ runs a few ppm off
    # the daemon's clock: a sample or so a second, which a local search absorbs).
    segment = PD_RATE // 2

    def similarity(at: int, start: int) -> float:
        a, b = out[at:at + segment], reference[start:start + segment]
        return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))

    lag = max(range(0, len(out) - len(reference)), key=lambda at: similarity(at, 0))
    assert similarity(lag, 0) > 0.95
    for start in range(0, len(reference) - segment, segment):
        drift = max(range(-40, 41), key=lambda d: similarity(lag + start + d, start))
        assert abs(drift) <= 20 and similarity(lag + start + drift, start) > 0.95, (start, drift)
    last = len(reference) - segment
    drift = max(range(-40, 41), key=lambda d: similarity(lag + last + d, last))
    assert similarity(lag + last + drift, last) > 0.95, "it played to the end"
    end = lag + len(reference)
    assert np.abs(out[end + 2000:]).max(initial=0.0) < 1e-6, "and stopped there: nothing stale from the ring"


@pytest.mark.parametrize("done_after_s", [0.0, 1.2], ids=["done-before-playback", "done-while-playing"])
def test_pd_plays_a_jam_in_time_to_its_end(tmp_path: Path, done_after_s: float) -> None:
    """A jam in time's done carries BEATS BARS BPM BEAT after FRAMES and SAMPLE_RATE: the player still ends
    where FRAMES says, whether done comes before the prebuffer ran out (a short jam: it plays at once) or
    while it plays (a stopped jam)."""
    rate, frames, count = 16000, 8000, 3
    audio = (np.random.default_rng(3).standard_normal(count * frames) * 0.1).astype(np.float32)
    chunks = []
    for index in range(count):
        path = tmp_path / f"chunk-{index}.wav"
        sf.write(path, audio[index * frames:(index + 1) * frames], rate, subtype="FLOAT")
        chunks.append(Chunk(job="pdjam", index=index, offset_samples=index * frames, sample_rate=rate, channels=1,
                            frames=frames, path=str(path), beat=576.0 + index))
    done = Done(job="pdjam", path="", frames=count * frames, sample_rate=rate, beats=3.0, bars=0.75, bpm=120.0,
                beat=576.0)
    log, played = tmp_path / "log.txt", tmp_path / "played.wav"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(15)
        with pd_beside("riffd-jam-test.pd", f"riffd-jam-test {sock.getsockname()[1]} {log} {played}") as pd:
            start, sender = _jam_request(sock)
            assert start == JamStart("pd jam", seed=5, job="pdjam")
            for event in (Accepted(job="pdjam", queue_position=0),
                          Started(job="pdjam", model="m", sample_rate=rate, channels=1, seed=5), *chunks):
                sock.sendto(osc.encode(event), sender)
            time.sleep(done_after_s)
            sock.sendto(osc.encode(done), sender)
            console = pd.communicate(timeout=30)[0]
    events = [event for event in _log(log) if event[0] != "connected"]
    assert "error" not in console, console
    assert [event[0] for event in events] == ["accepted", "started", *["chunk"] * count, "done", "ended"], events
    assert events[-2][2:] == [str(count * frames), str(rate), "3", "0.75", "120", "576"]
    _assert_played_whole(played, audio, rate)


def test_pd_resumes_with_what_a_resume_takes_and_controls_wait_for_a_jam(tmp_path: Path) -> None:
    """riffd-jam-resume-test.pd: options for a start (seed, temperature) and for any jam (lead_s, job, play);
    stop, set and snapshot before any jam (a print each, no request, no Pd error); a line that is no message
    (what follows a comma in a message box: said); resume, which the daemon takes; then stop and a start."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(15)
        with pd_beside("riffd-jam-resume-test.pd", f"riffd-jam-resume {sock.getsockname()[1]}") as pd:
            resume, sender = _jam_request(sock)
            sock.sendto(osc.encode(Accepted(job="pdres", queue_position=0)), sender)
            after = [_jam_request(sock)[0] for _ in range(2)]
            console = pd.communicate(timeout=20)[0]
    assert resume == JamStart("", resume="verse-2", lead_s=1.0, job="pdres", play=True)
    resume.validate()  # the daemon's rule: no seed, temperature... beside resume
    assert after == [JamStop("pdres"),
                     JamStart("more dub", seed=7, temperature=1.5, lead_s=1.0, job="pdres", play=True)]
    assert console.count("riffd-jam: no jam yet: start or resume one first") == 3, console
    assert "riffd-jam: unknown message: deep chords" in console, console
    assert "error" not in console and "out of range" not in console and "expected" not in console, console


def _jam_request(sock: socket.socket) -> tuple[Request, tuple[str, int]]:
    packet, sender = sock.recvfrom(65536)
    [(address, args)] = osc.parse_packet(packet)
    return osc.decode_request(address, args), sender

