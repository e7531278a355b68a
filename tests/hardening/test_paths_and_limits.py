"""Path confinement (path_not_allowed) and each limit with its own error code, refused at once."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import zmq
from daemon_harness import DaemonThread, OscPeer, fake_loader, make_config

from clients import Client
from daemon.paths import PathPolicy
from protocol import wire
from protocol.errors import PathNotAllowed, RiffdError
from protocol.messages import Accepted, Continue, Done, Error

RATE = 16000


def _tone(path: Path, seconds: float = 0.5) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(int(seconds * RATE), np.float32), RATE)
    return path


@pytest.fixture
def confined(tmp_path: Path):
    """A daemon that reads audio only from tmp_path/in (and its --out), with small limits."""
    allowed, outside = tmp_path / "in", tmp_path / "outside"
    allowed.mkdir()
    outside.mkdir()
    (tmp_path / "models").mkdir()
    config = make_config(tmp_path / "out", models=("fake/fast", "fake/slow"), audio_dirs=(allowed,),
                         model_dirs=(tmp_path / "models",),
                         max_audio_s=2.0, max_duration_s=30.0, max_jobs_per_client=2, max_queue=16)
    daemon = DaemonThread(config, loader=fake_loader).start()
    yield daemon, allowed, outside
    daemon.stop()


def test_audio_inputs_only_from_allowed_folders(confined) -> None:
    daemon, allowed, outside = confined
    inside = _tone(allowed / "take.wav")
    secret = _tone(outside / "secret.wav")
    (allowed / "link-out.wav").symlink_to(secret)
    (allowed / "link-in.wav").symlink_to(inside)
    (allowed / "sub").symlink_to(outside, target_is_directory=True)
    refused = {
        "outside": str(secret),
        "dotdot": str(allowed / ".." / "outside" / "secret.wav"),
        "relative": "in/take.wav",
        "symlink_file": str(allowed / "link-out.wav"),
        "symlink_dir": str(allowed / "sub" / "secret.wav"),
        "system": "/etc/passwd",
    }
    with Client(daemon.zmq, timeout_s=10) as client:
        for name, path in refused.items():
            events = list(client.continue_(path, duration_s=0.5, job=f"refused-{name.replace('_', '-')}")) \
                if name != "relative" else list(client._stream(Continue(path, 0.5, id=name)))
            # Refused at once: no `accepted`, one error naming the code.
            assert [type(e) for e in events] == [Error], (name, events)
            assert events[0].code == "path_not_allowed", (name, events[0])
        for path in (inside, allowed / "link-in.wav"):
            assert isinstance(list(client.continue_(str(path), duration_s=0.5))[-1], Done)
        # The melody and audio-prompt fields are confined the same way.
        events = list(client.generate("x", duration_s=0.5, audio_prompt=str(secret)))
        assert events[0].code == "path_not_allowed"


def test_model_folders_only_from_model_dirs(confined, tmp_path: Path) -> None:
    daemon, _, outside = confined
    for folder in (tmp_path / "models" / "mine", outside / "theirs"):
        folder.mkdir()
        (folder / "config.json").write_text("{}")
    (tmp_path / "models" / "sneaky").symlink_to(outside / "theirs", target_is_directory=True)
    with Client(daemon.zmq, timeout_s=10) as client:
        for model in (str(outside / "theirs"), str(tmp_path / "models" / "sneaky"),
                      str(tmp_path / "models" / ".." / "outside" / "theirs"), "/etc", "~"):
            events = list(client.generate("x", duration_s=0.5, model=model))
            assert [type(e) for e in events] == [Error] and events[0].code == "path_not_allowed", (model, events)
            with pytest.raises(RiffdError) as refused:
                client.load(model)
            assert refused.value.code == "path_not_allowed"
        # Inside --model-dir the folder is tried (the fake loader knows no folders: unknown_model).
        events = list(client.generate("x", duration_s=0.5, model=str(tmp_path / "models" / "mine")))
        assert events[-1].code == "unknown_model"
        # Presets, hub ids and the models named at start are not paths.
        assert isinstance(list(client.generate("x", duration_s=0.5, model="fake/fast"))[-1], Done)


def test_a_link_swapped_in_after_acceptance_is_still_refused(tmp_path: Path) -> None:
    """The runner resolves the path again when it reads it."""
    allowed = tmp_path / "in"
    secret = _tone(tmp_path / "secret.wav")
    inside = _tone(allowed / "take.wav")
    policy = PathPolicy(tmp_path / "out", [allowed])
    assert policy.input(str(inside)) == inside.resolve()
    inside.unlink()
    inside.symlink_to(secret)
    with pytest.raises(PathNotAllowed):
        policy.input(str(inside))


def test_outputs_stay_under_out_even_through_a_planted_link(confined) -> None:
    daemon, _, outside = confined
    # Someone with access to --out links a job's chunk folder elsewhere; the chunk files of
    # that job id must not follow the link.
    (daemon.config.out_dir / "evil").symlink_to(outside, target_is_directory=True)
    peer = OscPeer(daemon.osc_port)
    try:
        peer.send("/riffd/generate", "x", 0.5, "job", "evil")
        address, args = peer.receive_until("/riffd/error", "evil")[-1]
        assert args[1] == "path_not_allowed"
        assert list(outside.iterdir()) == []
        peer.send("/riffd/generate", "x", 0.5, "job", "fine")
        assert peer.receive_until("/riffd/done", "fine")[-1][0] == "/riffd/done"
    finally:
        peer.close()


def _raw(daemon: DaemonThread, header: dict, *buffers: bytes) -> Error:
    """Send one request's frames from a bare DEALER; return the daemon's first reply."""
    context = zmq.Context()
    sock = context.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(daemon.zmq)
    try:
        sock.send_multipart([json.dumps(header).encode(), *buffers])
        assert sock.poll(10000), "no reply"
        return wire.decode_event(sock.recv_multipart())
    finally:
        sock.close()
        context.term()


def test_each_limit_has_its_own_code(confined, tmp_path: Path) -> None:
    daemon, allowed, _ = confined
    base = {"v": 1, "type": "generate", "id": "r"}
    cases = {
        "duration_too_long": {**base, "prompt": "x", "duration_s": 31.0},
        "prompt_too_long": {**base, "prompt": "x" * 2001, "duration_s": 1.0},
        "message_too_large": {**base, "prompt": "x" * 70000, "duration_s": 1.0},
    }
    for code, header in cases.items():
        reply = _raw(daemon, header)
        assert isinstance(reply, Error) and reply.code == code, (code, reply)
    # Audio over --max-audio-s (2 s): inline samples, and a file (checked before decoding).
    three_s = np.zeros((1, 3 * RATE), np.float32)
    reply = _raw(daemon, {"v": 1, "type": "continue", "id": "a", "duration_s": 1.0,
                          "audio": {"buffer": 0, "sample_rate": RATE, "channels": 1, "frames": 3 * RATE,
                                    "dtype": "float32"}}, three_s.tobytes())
    assert reply.code == "audio_too_large"
    long_file = _tone(allowed / "long.wav", seconds=3.0)
    with Client(daemon.zmq, timeout_s=10) as client:
        events = list(client.continue_(str(long_file), duration_s=0.5))
        assert isinstance(events[-1], Error) and events[-1].code == "audio_too_large"
    # OSC: a packet over 16 KB, a prompt over the limit.
    peer = OscPeer(daemon.osc_port)
    try:
        peer.send("/riffd/generate", "x" * 2001, 1.0, "job", "wordy")
        assert peer.receive_until("/riffd/error")[-1][1][1] == "prompt_too_long"
        peer.send("/riffd/generate", "x" * 17000, 1.0)
        assert peer.receive_until("/riffd/error")[-1][1][1] == "message_too_large"
    finally:
        peer.close()


def test_jobs_in_flight_per_client(confined) -> None:
    daemon, _, _ = confined
    with Client(daemon.zmq, timeout_s=10) as greedy, Client(daemon.zmq, timeout_s=10) as polite:
        first = greedy.generate("a", duration_s=20.0, model="fake/slow", job="g1")
        second = greedy.generate("b", duration_s=20.0, model="fake/slow", job="g2")
        assert isinstance(next(first), Accepted) and isinstance(next(second), Accepted)
        third = list(greedy.generate("c", duration_s=0.5, job="g3"))
        assert [type(e) for e in third] == [Error] and third[0].code == "too_many_jobs"
        # Another client is not held back by the greedy one's limit.
        other = polite.generate("d", duration_s=0.5, job="p1")
        assert isinstance(next(other), Accepted)
        greedy.cancel("g1")
        assert list(first)[-1].code == "cancelled"
        # A slot freed: the greedy client may submit again.
        again = greedy.generate("e", duration_s=0.5, job="g4")
        assert isinstance(next(again), Accepted)
        greedy.cancel("g2")
        assert list(second)[-1].code == "cancelled"
        assert isinstance(list(again)[-1], Done) and isinstance(list(other)[-1], Done)


def test_queue_length_limit_is_queue_full(tmp_path: Path) -> None:
    config = make_config(tmp_path / "out", models=("fake/slow",), max_queue=1, max_jobs_per_client=8)
    with DaemonThread(config, loader=fake_loader).start() as daemon, Client(daemon.zmq, timeout_s=10) as client:
        running = client.generate("a", duration_s=20.0, job="run")
        next(running)
        from daemon_harness import wait_for

        wait_for(lambda: client.status().running == 1, timeout_s=5)
        queued = client.generate("b", duration_s=0.5, job="wait")
        assert isinstance(next(queued), Accepted)
        refused = list(client.generate("c", duration_s=0.5, job="over"))
        assert [type(e) for e in refused] == [Error] and refused[0].code == "queue_full"
        client.cancel("run")
        assert isinstance(list(queued)[-1], Done)
