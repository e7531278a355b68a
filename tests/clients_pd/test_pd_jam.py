"""riffd-jam.pd for real: `pd -nogui` jams against a real daemon (debug/musicgen, 1 s windows): start,
a set, weighted prompts from slots and a weight, a snapshot, stop; what its outlets played is checked
against the chunk files the daemon wrote. Against a UDP socket playing the daemon: a jam in time's
end, a resume after options it must leave out, and the help patches' prompts."""

from __future__ import annotations

import re
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from daemon_harness import DaemonThread, make_config
from test_pd import PD_DIR, PD_RATE, _log, pd_beside, run_pd

from clients.pd.patchgen.patches import event_log
from clients.pd.patchgen.pdfile import Canvas
from protocol import osc
from protocol.messages import (
    Accepted, Applied, Chunk, Continue, Done, Error, Event, Generate, JamPrompts, JamSet, JamStart, JamStop, Ok,
    Request, Started, Subscribe, Unsubscribe,
)

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


def test_pd_follows_only_the_jam_it_started_last(pd_jam_daemon: DaemonThread, tmp_path: Path) -> None:
    """riffd-jam-two-test.pd starts a second jam while its first still runs: the daemon sends both jams'
    events to the patch's socket, and from the second's accepted on only the second's come out of the
    outlet and into the ring, so the first's chunks do not play and its done does not end the second."""
    log, played = tmp_path / "log.txt", tmp_path / "played.wav"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as monitor:
        # A subscriber hears every event in the order the patch is sent them.
        monitor.bind(("127.0.0.1", 0))
        monitor.sendto(osc.encode(Subscribe()), ("127.0.0.1", pd_jam_daemon.osc_port))
        monitor.settimeout(5)
        assert isinstance(_event(monitor), Ok)
        console = run_pd("riffd-jam-two-test.pd", f"riffd-jam-two {pd_jam_daemon.osc_port} {log} {played}",
                         timeout_s=60)
        monitor.settimeout(0.5)
        sent = []
        try:
            while True:
                sent.append(_event(monitor))
        except TimeoutError:
            pass
        monitor.sendto(osc.encode(Unsubscribe()), ("127.0.0.1", pd_jam_daemon.osc_port))
    second_accepted = next(i for i, e in enumerate(sent) if isinstance(e, Accepted) and e.job == "jam-b")
    first_later = [e for e in sent[second_accepted:] if getattr(e, "job", None) == "jam-a"]
    assert any(isinstance(e, Chunk) for e in first_later) and any(isinstance(e, Done) for e in first_later), sent

    events = [event for event in _log(log) if event[0] != "connected"]
    assert ["timeout"] not in events, (events, console)
    assert "error" not in console, console
    assert events[0] == ["accepted", "jam-a", "0"], events
    second = events.index(["accepted", "jam-b", "0"])
    assert [e for e in events[second:] if _jam_named(e) != "jam-b"] == [], events
    kinds = [event[0] for event in events[second:]]
    assert kinds[-2:] == ["done", "ended"] and "started" in kinds, events
    chunks = [event for event in events[second:] if event[0] == "chunk"]
    assert [int(event[4]) for event in chunks][:1] == [0] and len(chunks) > 2, events
    audio = np.concatenate([sf.read(event[3], dtype="float32")[0] for event in chunks])
    _assert_played_whole(played, audio, 32000)


def test_pd_drops_other_jams_events_and_keeps_the_answers_to_its_starts(tmp_path: Path) -> None:
    """Against a UDP socket playing a daemon whose subscriber the patch is (so it hears another client's
    jam, "theirs"): two starts, the first refused (an error naming no jam), the second accepted. Out come
    the refusal, the accepted and the accepted jam's events; none of theirs, their accepted included (no
    start of the patch waits for an answer then)."""
    c = Canvas()
    event_log(c, "riffd-jam-gate-log", 3000, 400, 20)
    c.obj("r", 20, 20, "r riffd-jam-gate")
    c.obj("t", 20, 45, "t l l")
    c.obj("file", 200, 70, "unpack f s")
    c.obj("port", 20, 70, "list split 1")
    c.msg("conn", 20, 95, "connect 127.0.0.1 \\$1")
    c.obj("then", 20, 120, "t b")
    c.msg("go", 20, 145, "start one \\, start two")
    c.obj("jam", 20, 200, "riffd-jam")
    c.msg("quit", 200, 200, "\\; pd quit")
    c.chain("r", "t")
    c.chain("t:1", "file")
    c.wire("file:1", "slog:1")
    c.chain("t", "port", "conn", "jam")
    c.chain("conn", "then", "go", "jam")
    c.wire("jam", "ev")
    c.chain("to", "slog")
    c.wire("to", "quit")
    patch, log = tmp_path / "riffd-jam-gate.pd", tmp_path / "log.txt"
    patch.write_text(c.render())
    sequence: list[tuple[Event, bool]] = [  # (event, the patch's)
        (Error(job="", code="invalid_argument", message="refused"), True),
        (Accepted(job="j2", queue_position=0), True),
        (Accepted(job="theirs", queue_position=0), False),
        (Started(job="j2", model="m", sample_rate=16000, channels=1), True),
        (Started(job="theirs", model="m", sample_rate=48000, channels=2), False),
        (Applied(job="theirs", offset_samples=9), False),
        (Applied(job="j2", offset_samples=100), True),
        (Error(job="theirs", code="cancelled", message="stopped"), False),
        (Error(job="j2", code="not_found", message="late"), True),
        (Ok(request="jam_stop", subject="theirs"), False),
        (Ok(request="jam_stop", subject="j2"), True),
        (Done(job="theirs", path="", frames=48000, sample_rate=48000), False),
    ]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(15)
        with pd_beside(str(patch), f"riffd-jam-gate {sock.getsockname()[1]} {log}") as pd:
            (first, sender), (second, _) = _jam_request(sock), _jam_request(sock)
            assert (first, second) == (JamStart("one"), JamStart("two"))
            for event, _ in sequence:
                sock.sendto(osc.encode(event), sender)
            console = pd.communicate(timeout=20)[0]
    assert "error:" not in console, console
    logged = [event for event in _log(log) if event[0] != "connected"]
    assert logged == [_words(event) for event, ours in sequence if ours] + [["timeout"]], console


def _words(event: Event) -> list[str]:
    """An event as [riffd-jam]'s outlet gives it and Pd's log writes it (an empty string is no word)."""
    [(address, args)] = osc.parse_packet(osc.encode(event))
    return [address.removeprefix("/riffd/"), *(str(arg) for arg in args if arg != "")]


def test_pd_sends_each_prompt_slot_once_per_blend(tmp_path: Path) -> None:
    """Each prompt or weight sends the slots that have a text, once each, with their weights now (QA: every
    blend was appended to the ones before, so two slots and three weight moves made 9 prompts, refused)."""
    c = Canvas()
    c.obj("r", 20, 20, "r riffd-jam-blend")
    c.obj("t", 20, 45, "t b l")
    c.msg("conn", 120, 70, "connect 127.0.0.1 \\$1")
    c.msg("go", 20, 95, "start x")
    c.obj("jam", 20, 200, "riffd-jam")
    c.obj("acc", 20, 230, "route accepted")
    c.msg("steer", 20, 255, "prompt 1 dub techno \\, prompt 2 tabla groove \\, weight 2 0.25 \\, weight 2 0.5 "
          "\\, weight 1 0 \\, blend")
    c.obj("lb", 300, 20, "loadbang")
    c.obj("wait", 300, 45, "delay 3000")
    c.msg("quit", 300, 70, "\\; pd quit")
    c.chain("r", "t")
    c.chain("t:1", "conn", "jam")
    c.chain("t", "go", "jam")
    c.chain("jam", "acc", "steer", "jam")
    c.chain("lb", "wait", "quit")
    patch = tmp_path / "riffd-jam-blend.pd"
    patch.write_text(c.render())
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(15)
        with pd_beside(str(patch), f"riffd-jam-blend {sock.getsockname()[1]}") as pd:
            start, sender = _jam_request(sock)
            assert start == JamStart("x")
            sock.sendto(osc.encode(Accepted(job="j", queue_position=0)), sender)
            blends = [_jam_request(sock)[0] for _ in range(6)]
            console = pd.communicate(timeout=20)[0]
    both = ("dub techno", "tabla groove")
    assert blends == [JamPrompts("j", ("dub techno",), (1.0,)), JamPrompts("j", both, (1.0, 1.0)),
                      JamPrompts("j", both, (1.0, 0.25)), JamPrompts("j", both, (1.0, 0.5)),
                      JamPrompts("j", both, (0.0, 0.5)), JamPrompts("j", both, (0.0, 0.5))], console


def _event(sock: socket.socket) -> Event:
    [(address, args)] = osc.parse_packet(sock.recv(65536))
    return osc.decode_event(address, args)


def _jam_named(event: list[str]) -> str:
    """The jam an event of [riffd-jam]'s outlet names: its JOB (an ok's SUBJECT: ok jam_stop JAM)."""
    return event[2] if event[0] == "ok" else event[1]


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


def _top_boxes(patch: Path) -> tuple[list[str], list[tuple[int, int]]]:
    """A .pd file's top canvas: each box's record (`#X obj ...`, `#X msg ...`, a subpatch's `#X restore ...`)
    by index, and its connections (source, sink)."""
    boxes: list[str] = []
    wires = []
    depth = 0
    for record in re.split(r"(?<!\\);\n", patch.read_text()):
        if record.startswith("#N canvas"):
            depth += 1
        elif record.startswith("#X restore"):
            depth -= 1
            if depth == 1:
                boxes.append(record)
        elif depth == 1 and record.startswith("#X connect"):
            source, _, sink, _ = map(int, record.split()[2:6])
            wires.append((source, sink))
        elif depth == 1 and record.split()[1:2] and record.split()[1] in (
                "obj", "msg", "text", "floatatom", "symbolatom", "listbox"):
            boxes.append(record)
    return boxes, wires


#: Help messages that carry a prompt: their first word (and second, for set), and how many words come
#: before the prompt's.
_PROMPT_BOXES = {("generate",): 2, ("onbar",): 2, ("continue",): 3, ("start",): 1, ("set", "prompt"): 2,
                 ("prompt",): 2}


def _prompt_messages(patch: Path, target: str) -> list[tuple[str, str]]:
    """The message boxes of a help patch wired into its [target] that carry a prompt: (text, the prompt
    the person who wrote it meant; a comma written `\\,`)."""
    boxes, wires = _top_boxes(patch)
    # The [target] the messages go to (the one at the top is the title).
    [index] = {i for i, box in enumerate(boxes) if box.split()[1] == "obj" and box.split()[4:5] == [target]} & {
        sink for _, sink in wires}
    found = []
    for source, sink in wires:
        words = boxes[source].split()[4:]
        if sink != index or boxes[source].split()[1] != "msg":
            continue
        for head, skip in _PROMPT_BOXES.items():
            if tuple(words[:len(head)]) == head and len(words) > skip:
                found.append((" ".join(words), " ".join(words[skip:]).replace(" \\,", ",")))
    return found


def test_the_help_patches_prompts_reach_the_daemon_whole(tmp_path: Path) -> None:
    """Every help message with a prompt, as written in riffd-help.pd and riffd-jam-help.pd, sent by Pd from
    [riffd] and [riffd-jam] to a UDP socket playing the daemon (which accepts the jam, so that its set and
    prompt slots go out too): each prompt arrives whole (a comma in a message box would cut it)."""
    takes = _prompt_messages(PD_DIR / "riffd-help.pd", "riffd")
    jam = _prompt_messages(PD_DIR / "riffd-jam-help.pd", "riffd-jam")
    starts = [message for message in jam if message[0].startswith("start ")]
    later = [message for message in jam if message not in starts]
    assert len(takes) >= 3 and starts and len(later) >= 2
    c = Canvas()
    c.obj("r", 20, 20, "r riffd-help-prompts")
    c.obj("t", 20, 45, "t b b l")
    c.msg("conn", 300, 70, "connect 127.0.0.1 \\$1")
    c.obj("riffd", 20, 400, "riffd")
    c.obj("jam", 300, 400, "riffd-jam")
    c.obj("acc", 300, 430, "route accepted")
    c.chain("r", "t")
    c.chain("t:2", "conn", "riffd")
    c.wire("conn", "jam")
    for group, (trigger, target) in (("a", ("t:1", "riffd")), ("b", ("t:0", "jam")), ("c", ("acc", "jam"))):
        messages = {"a": takes, "b": starts, "c": later}[group]
        c.obj(f"{group}t", 20, 100, "t" + " b" * len(messages))
        c.wire(trigger, f"{group}t")
        for i, (text, _) in enumerate(messages):
            c.msg(f"{group}{i}", 20, 130 + 30 * i, text)
            c.wire(f"{group}t:{len(messages) - 1 - i}", f"{group}{i}")  # in the help's order
            c.wire(f"{group}{i}", target)
    c.wire("jam", "acc")
    c.obj("lb", 600, 20, "loadbang")
    c.obj("quit", 600, 45, "delay 2000")
    c.msg("quitm", 600, 70, "\\; pd quit")
    c.chain("lb", "quit", "quitm")
    patch = tmp_path / "riffd-help-prompts.pd"
    patch.write_text(c.render())
    prompts = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(1.5)
        with pd_beside(str(patch), f"riffd-help-prompts {sock.getsockname()[1]}") as pd:
            try:
                while True:
                    request, sender = _jam_request(sock)
                    if isinstance(request, JamStart):
                        sock.sendto(osc.encode(Accepted(job="help-jam", queue_position=0)), sender)
                    if isinstance(request, JamPrompts):
                        prompts.append(request.prompts[-1])  # the slot just set, after the ones before it
                    else:
                        assert isinstance(request, Generate | Continue | JamStart | JamSet), request
                        prompts.append(request.prompt)
            except TimeoutError:
                pass
            console = pd.communicate(timeout=20)[0]
    assert prompts == [meant for _, meant in takes + starts + later], console
    assert "error" not in console and "unknown message" not in console, console
