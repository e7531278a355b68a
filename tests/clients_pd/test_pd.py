"""Pure Data for real: `pd -nogui` runs clients/pd/riffd.pd against a Python peer and a real daemon.

The patches the tests open are in this folder (generated with the abstraction by
`python -m clients.pd.patchgen`); Pd reports back through files it writes (its event log, its
arrays as float WAVs, what its outlet~ played).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from daemon_harness import DaemonThread

from clients import Client
from clients.pd.patchgen.__main__ import main as build_patches
from protocol import osc
from protocol.messages import (
    Accepted, Cancel, Chunk, Continue, Error, Event, Generate, GetClock, GetStatus, Ok, SetTempo, Started, Subscribe,
    Unsubscribe,
)

HERE = Path(__file__).parent
PD_DIR = HERE.parents[1] / "clients" / "pd"
PD_RATE = 48000

pytestmark = pytest.mark.skipif(shutil.which("pd") is None, reason="Pure Data (puredata-core) not installed")


def pd_command(patch: str, send: str) -> list[str]:
    """Pd headless on a test patch of this folder, the abstraction on its path, `send` sent at start."""
    return ["pd", "-nogui", "-nosound", "-noprefs", "-r", str(PD_RATE), "-path", str(PD_DIR),
            "-open", str(HERE / patch), "-send", send]


def run_pd(patch: str, send: str, timeout_s: float = 40.0) -> str:
    """Run a test patch headless until it quits; its console output."""
    done = subprocess.run(pd_command(patch, send), capture_output=True, text=True, timeout=timeout_s)
    return done.stdout + done.stderr


@contextmanager
def pd_beside(patch: str, send: str) -> Iterator[subprocess.Popen[str]]:
    """Pd running a test patch while the test plays its peer (console on stdout); killed if still running."""
    pd = subprocess.Popen(pd_command(patch, send), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        yield pd
    finally:
        if pd.poll() is None:
            pd.kill()
            pd.wait()


def _requests(sock: socket.socket, count: int) -> tuple[list[Generate], tuple[str, int]]:
    """The next `count` generate requests Pd sent to `sock`, and the address it sent them from (Pd
    hears answers on the socket it sent from)."""
    requests: list[Generate] = []
    while len(requests) < count:
        packet, sender = sock.recvfrom(65536)
        [(address, args)] = osc.parse_packet(packet)
        request = osc.decode_request(address, args)
        assert isinstance(request, Generate), request
        requests.append(request)
    return requests, sender


def test_pd_shows_every_seed_the_daemon_draws_whole(tmp_path: Path) -> None:
    """A performer copies a take's seed from what the patch shows: Pd holds it as a 32-bit float and
    prints six significant digits, so the largest seed the daemon can draw must come out as itself."""
    from daemon.seeds import DRAWN_SEED_LIMIT, draw_seed

    largest = DRAWN_SEED_LIMIT - 1
    assert all(0 <= draw_seed() <= largest for _ in range(1000))
    patch = tmp_path / "seed.pd"
    patch.write_text("#N canvas 0 0 300 200 12;\n#X obj 10 10 loadbang;\n"
                     f"#X msg 10 40 {largest} \\, \\; pd quit;\n#X obj 10 70 print seed;\n"
                     "#X connect 0 0 1 0;\n#X connect 1 0 2 0;\n")
    done = subprocess.run(["pd", "-nogui", "-nosound", "-nomidi", "-noprefs", "-stderr", "-open", str(patch)],
                          capture_output=True, text=True, timeout=30)
    assert f"seed: {largest}\n" in done.stderr, done.stderr


def test_committed_patches_are_what_the_builders_make() -> None:
    assert build_patches(["--check"]) == 0


def _type_tags(packet: bytes) -> str:
    start = packet.index(b",")
    return packet[start:packet.index(b"\0", start)].decode()


def test_requests_from_pd_have_the_schema_types() -> None:
    """riffd-requests.pd sends a fixed sequence; a UDP socket stands in for the daemon."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(0.5)
        received = []
        with pd_beside("riffd-requests.pd", f"riffd-requests {sock.getsockname()[1]}") as pd:
            try:
                while len(received) < 13:
                    received.append(sock.recv(65536))
            except TimeoutError:
                pass
            console = pd.communicate(timeout=20)[0]
    assert "error" not in console, console
    decoded = []
    for packet in received:
        [(address, args)] = osc.parse_packet(packet)
        decoded.append((address, _type_tags(packet), osc.decode_request(address, args)))
    addresses = [address for address, _, _ in decoded]
    assert addresses == ["/riffd/generate"] * 3 + ["/riffd/continue"] * 2 + [
        "/riffd/cancel", "/riffd/status", "/riffd/subscribe", "/riffd/unsubscribe", "/riffd/tempo", "/riffd/clock",
        "/riffd/generate", "/riffd/generate"], addresses

    # seed 7, temperature 0.5, job pd-a, play 1: ints as i, floats as f, words joined into one prompt.
    _, tags, first = decoded[0]
    assert tags == ",sfsisfsssi"
    assert first == Generate("hello world", 2.0, seed=7, temperature=0.5, job="pd-a", play=True)
    assert isinstance(first.seed, int) and first.play is True
    # unset temperature, seed 8 replaces seed 7 in place; a prompt may start with a number.
    _, tags, second = decoded[1]
    assert tags == ",sfsisssi"
    assert second == Generate("90 bpm funk", 3.0, seed=8, job="pd-a", play=True)
    # clear forgets every option; a number given for a string field (job 12) goes as a string.
    _, tags, third = decoded[2]
    assert tags == ",sfsfssss"
    assert third == Generate("", 1.0, gain=0.25, job="12", model="debug/musicgen")
    # continue: a path, and optionally the rest of the message as the prompt.
    assert decoded[3][1:] == (",sf", Continue("/tmp/in.wav", 2.0))
    assert decoded[4][1:] == (",sfss", Continue("/tmp/in.wav", 2.5, prompt="more drums"))
    assert decoded[5][1:] == (",s", Cancel("pd-a"))
    assert [d[1:] for d in decoded[6:9]] == [(",", GetStatus()), (",", Subscribe()), (",", Unsubscribe())]
    # In time: the tempo as a float, the clock, and onbar: BARS bars of duration 0 launched on the bar,
    # followed by the stored options.
    assert decoded[9][1:] == (",f", SetTempo(97.0))
    assert decoded[10][1:] == (",", GetClock())
    assert decoded[11][1:] == (",sfsiss", Generate("on the one", 0.0, bars=2, launch="bar"))
    assert decoded[12][1:] == (",sfsisssi", Generate("", 0.0, bars=1, launch="bar", seed=3))


def _log(path: Path) -> list[list[str]]:
    """Pd's text file: one `atom atom ...;` message a line."""
    return [line.rstrip(";").split() for line in path.read_text().splitlines() if line.strip()]


def test_pd_generates_loads_and_plays_with_a_real_daemon(debug_daemon: DaemonThread, tmp_path: Path) -> None:
    duration_s, rate = 1.0, 32000
    names = ("log.txt", "w2.wav", "played.wav", "st.wav")
    log, from_chunks, played, stereo = (tmp_path / name for name in names)
    # Job 3 continues this file: it goes where the daemon may read request audio (its --out folder).
    from_file = debug_daemon.config.out_dir.resolve() / "pd-array-w1.wav"
    console = run_pd("riffd-daemon-test.pd",
                     f"riffd-test {debug_daemon.osc_port} {log} {from_file} {from_chunks} {played} {stereo} {duration_s}")
    events = _log(log)
    assert ["timeout"] not in events, (events, console)
    # The only error is job 6's: `cancel` (no argument) cancelled the last job accepted.
    errors = [event for event in events if event[0] == "error"]
    assert [e[:3] for e in errors] == [["error", "pdtest-6", "cancelled"]], (events, console)

    jobs = {}
    for job in ("pdtest-1", "pdtest-2", "pdtest-3", "pdtest-st"):
        mine = [event for event in events if len(event) > 1 and event[1] == job]
        kinds = [event[0] for event in mine]
        assert kinds[:2] == ["accepted", "started"] and kinds[-2:] == ["done", "loaded"], kinds
        assert "progress" in kinds and "chunk" in kinds and "filled" in kinds
        started = mine[1]
        assert started[2:5] == (["debug/musicgen-stereo", str(rate), "2"] if job == "pdtest-st"
                                else ["debug/musicgen", str(rate), "1"])
        # The seed, last (drawn unless the patch set one), as Pd wrote it: every digit of it.
        assert len(started) == 6 and started[5].isdigit(), started
        jobs[job] = mine
    assert jobs["pdtest-1"][1][5] == "7"  # the patch's seed comes back
    for job, seconds in (("pdtest-1", duration_s), ("pdtest-2", duration_s), ("pdtest-3", 0.5), ("pdtest-st", 0.5)):
        assert jobs[job][-1][2:] == [str(round(seconds * rate)), str(rate)]  # loaded JOB FRAMES SAMPLE_RATE

    # Job 1 was saved: Pd loaded the daemon's file, sample for sample.
    done = jobs["pdtest-1"][-2]
    saved, saved_rate = sf.read(done[2], dtype="float32")
    assert saved_rate == rate and len(saved) == round(duration_s * rate)
    pd_array, _ = sf.read(from_file, dtype="float32")
    np.testing.assert_array_equal(pd_array, saved)
    # The options reached the daemon with their types: the same request from Python gives the same audio.
    with Client(debug_daemon.zmq, timeout_s=30) as client:
        again = client.generate("warm pad from pd", duration_s=duration_s, seed=7).collect()
    np.testing.assert_array_equal(again.audio[0], saved)

    # Job 2 (save 0): no file at done (an empty symbol, which the log leaves out), then its frames
    # and rate; the array is its chunk files joined, in order, each at the offset its notice gave.
    assert jobs["pdtest-2"][-2] == ["done", "pdtest-2", str(rate), str(rate)]
    offsets = [int(event[4]) for event in jobs["pdtest-2"] if event[0] == "chunk"]
    assert offsets[0] == 0 and offsets == sorted(offsets)
    assert "error" not in console, console
    chunk_paths = [event[3] for event in jobs["pdtest-2"] if event[0] == "chunk"]
    chunks = np.concatenate([sf.read(path, dtype="float32")[0] for path in chunk_paths])
    pd_array, _ = sf.read(from_chunks, dtype="float32")
    np.testing.assert_array_equal(pd_array, chunks)
    fills = [int(event[2]) for event in jobs["pdtest-2"] if event[0] == "filled"]
    assert fills == sorted(fills) and fills[-1] == len(chunks)

    # Job 3 continued the file Pd wrote: the daemon saved 0.5 s of new audio, now in the array.
    continued, _ = sf.read(jobs["pdtest-3"][-2][2], dtype="float32")
    assert len(continued) == round(0.5 * rate) and np.abs(continued).max() > 0
    # Jobs 4 and 5 were sent back to back (the daemon runs them together, in one batch, so job 4
    # may end before or after job 5, and its chunks may come before job 5's accepted), but the array
    # follows the newest request sent: only job 5 filled and loaded it, whenever job 4 ended.
    kinds = {job: [e[0] for e in events if len(e) > 1 and e[1] == job] for job in ("pdtest-4", "pdtest-5", "pdtest-6")}
    assert "chunk" in kinds["pdtest-4"] and "done" in kinds["pdtest-4"]
    assert "filled" not in kinds["pdtest-4"] and "loaded" not in kinds["pdtest-4"]
    assert kinds["pdtest-5"][-2:] == ["done", "loaded"] and "filled" in kinds["pdtest-5"]
    assert kinds["pdtest-6"][0] == "accepted" and kinds["pdtest-6"][-1] == "error" and "done" not in kinds["pdtest-6"]

    # The stereo job: the left and right arrays hold the saved file's two channels.
    saved_stereo, _ = sf.read(jobs["pdtest-st"][-2][2], dtype="float32")
    pd_stereo, _ = sf.read(stereo, dtype="float32")
    assert saved_stereo.shape == (round(0.5 * rate), 2)
    np.testing.assert_array_equal(pd_stereo, saved_stereo)
    assert not np.array_equal(saved_stereo[:, 0], saved_stereo[:, 1])

    # Pd played job 1 through the abstraction's outlet~ at the file's rate, resampled to Pd's.
    both, out_rate = sf.read(played, dtype="float32")
    assert out_rate == PD_RATE and both.shape[1] == 2
    np.testing.assert_array_equal(both[:, 1], both[:, 0])  # a mono take plays on both outlets
    out = both[:, 0]
    sounding = np.flatnonzero(np.abs(out) > 1e-6)
    expected_frames = round(duration_s * PD_RATE)
    assert abs((sounding[-1] - sounding[0]) - expected_frames) < 0.02 * expected_frames
    reference = np.interp(np.arange(expected_frames) * rate / PD_RATE, np.arange(len(saved)), saved)
    window = expected_frames - 2000
    best = max(np.dot(out[lag:lag + window], reference[:window])
               / (np.linalg.norm(out[lag:lag + window]) * np.linalg.norm(reference[:window]) + 1e-12)
               for lag in range(0, 1000))
    assert best > 0.98, best


def test_pd_places_each_chunk_at_the_offset_the_daemon_gives(tmp_path: Path) -> None:
    """A UDP socket plays the daemon and leaves chunk 1's notice out (a lost packet): chunk 2 still
    lands at its own offset, with silence where chunk 1 would be."""
    rate, frames = 16000, 1000
    paths = []
    for index, level in ((0, 0.25), (2, 0.5)):
        paths.append(tmp_path / f"chunk-{index}.wav")
        sf.write(paths[-1], np.full(frames, level, np.float32), rate, subtype="FLOAT")
    out = tmp_path / "array.wav"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(15)
        with pd_beside("riffd-gap-test.pd", f"riffd-gap {sock.getsockname()[1]} {out}") as pd:
            [request], sender = _requests(sock, 1)
            assert request.job == "gap"
            events = [Accepted(job="gap", queue_position=0), Started(job="gap", model="m", sample_rate=rate, channels=1),
                      Chunk(job="gap", index=0, offset_samples=0, sample_rate=rate, channels=1, frames=frames,
                            path=str(paths[0])),
                      Chunk(job="gap", index=2, offset_samples=2 * frames, sample_rate=rate, channels=1, frames=frames,
                            path=str(paths[1]))]
            for event in events:
                sock.sendto(osc.encode(event), sender)
            console = pd.communicate(timeout=20)[0]
    assert "error" not in console, console
    array, _ = sf.read(out, dtype="float32")
    np.testing.assert_array_equal(array, np.concatenate([np.full(frames, 0.25), np.zeros(frames), np.full(frames, 0.5)]))


def test_pd_follows_the_newest_request_sent_not_the_newest_accepted(tmp_path: Path) -> None:
    """A UDP socket plays the daemon, answering in request order but only once Pd has sent every
    request of a message: pd-a's accepted and first chunk come after pd-b went out (as a loaded
    daemon's may); then a refusal of pd-e, two jobs without a name (the daemon names them) with a
    refused one between them. Only pd-b's and anon-4's chunks may fill the array: following the
    newest *accepted* job, the abstraction loaded pd-a's and anon-3's."""
    rate, frames = 16000, 800
    level = {"pd-a": 0.1, "pd-b": 0.2, "anon-3": 0.3, "anon-4": 0.4}
    chunk = {}
    for job, value in level.items():
        chunk[job] = Chunk(job=job, index=0, offset_samples=0, sample_rate=rate, channels=1, frames=frames,
                           path=str(tmp_path / f"{job}.wav"))
        sf.write(chunk[job].path, np.full(frames, value, np.float32), rate, subtype="FLOAT")
    log, out = tmp_path / "log.txt", tmp_path / "array.wav"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(15)
        with pd_beside("riffd-follow-test.pd", f"riffd-follow {sock.getsockname()[1]} {log} {out}") as pd:
            first, sender = _requests(sock, 2)
            assert [r.job for r in first] == ["pd-a", "pd-b"]
            answers: list[Event] = [Accepted(job="pd-a", queue_position=0), chunk["pd-a"],
                                    Accepted(job="pd-b", queue_position=1), chunk["pd-b"],
                                    Ok(request="test", subject="phase 1")]
            for event in answers:
                sock.sendto(osc.encode(event), sender)
            second, sender = _requests(sock, 4)
            assert [r.job for r in second] == ["pd-e", None, None, None]
            answers = [Error(job="pd-e", code="duplicate_job", message="pd-e is running"),
                       Accepted(job="anon-3", queue_position=0), chunk["anon-3"],
                       Error(job="", code="invalid_argument", message="refused without a job id"),
                       Accepted(job="anon-4", queue_position=1), chunk["anon-4"], Ok(request="test", subject="phase 2")]
            for event in answers:
                sock.sendto(osc.encode(event), sender)
            console = pd.communicate(timeout=20)[0]
    events = _log(log)
    assert ["timeout"] not in events and "error" not in console, (events, console)
    assert [e[1] for e in events if e[0] == "filled"] == ["pd-b", "anon-4"], events
    array, _ = sf.read(out, dtype="float32")
    np.testing.assert_array_equal(array, np.full(frames, level["anon-4"], np.float32))


def test_pd_sets_the_tempo_shows_the_clock_and_launches_on_the_bar(fake_daemon, tmp_path: Path) -> None:
    """riffd-clock-test.pd: `tempo 97`, `clock 50` (polled), `onbar 1 on the one` against a daemon's own timeline."""
    log = tmp_path / "clock-log.txt"
    console = run_pd("riffd-clock-test.pd", f"riffd-clock {fake_daemon.osc_port} {log}")
    events = _log(log)
    assert ["timeout"] not in events and not [e for e in events if e[0] == "error"], (events, console)
    clocks = [e for e in events if e[0] == "clock"]
    # The tempo request's answer, then the polls: each clock SOURCE TEMPO BEAT PHASE PEERS QUANTUM.
    assert len(clocks) >= 8, (events, console)
    assert all(c[1] == "own" and float(c[2]) == 97.0 and c[6] == "4" for c in clocks), clocks
    beats = [float(c[3]) for c in clocks]
    assert beats == sorted(beats) and beats[-1] > beats[0]
    assert all(0.0 <= float(c[4]) < 4.0 and abs(float(c[4]) - float(c[3]) % 4) < 1e-3 for c in clocks)
    # onbar: one bar at 97 BPM (the fake model's 16 kHz), launched on a bar of the timeline.
    [done] = [e for e in events if e[0] == "done"]
    frames, rate, beats_, bars, bpm, launch = int(done[3]), int(done[4]), *map(float, done[5:9])
    assert done[1] == "pd-onbar" and rate == 16000 and frames == round(4 * 60 / 97 * rate)
    assert (bars, beats_, bpm) == (pytest.approx(1.0, abs=1e-4), pytest.approx(4.0, abs=1e-4), 97.0)
    assert launch % 4 == 0
    assert "error" not in console, console
