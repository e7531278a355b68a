"""ZeroMQ end to end: real sockets on 127.0.0.1, the real debug/musicgen preset for the main flows."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import soundfile as sf
import zmq
from daemon_harness import DaemonThread, Monitor

from clients import Client
from daemon.seeds import DRAWN_SEED_LIMIT
from protocol import wire
from protocol.errors import BadAudio, InvalidArgument
from protocol.messages import Accepted, Chunk, Done, Error, Generate, Progress, Started


def _events(client: Client, *args, **kwargs) -> list:
    return list(client.generate(*args, **kwargs))


def _check_stream(events: list, job: str, sample_rate: int, duration_s: float) -> np.ndarray:
    """The shape every job stream has; returns the joined audio."""
    assert isinstance(events[0], Accepted) and events[0].job == job
    assert isinstance(events[1], Started) and events[1].sample_rate == sample_rate
    assert isinstance(events[-1], Done) and events[-1].job == job
    assert sum(isinstance(e, (Done, Error)) for e in events) == 1
    assert all(e.job == job for e in events)
    progress = [e for e in events if isinstance(e, Progress)]
    assert progress and progress[-1].done == progress[-1].total
    assert [p.done for p in progress] == sorted(p.done for p in progress)
    chunks = [e for e in events if isinstance(e, Chunk)]
    assert [c.index for c in chunks] == list(range(len(chunks)))
    offset = 0
    for chunk in chunks:
        assert chunk.offset_samples == offset
        assert chunk.audio.shape == (chunk.channels, chunk.frames) and chunk.audio.dtype == np.float32
        offset += chunk.frames
    assert offset == round(duration_s * sample_rate) == events[-1].frames
    return np.concatenate([c.audio for c in chunks], axis=1)


def test_two_clients_at_once_each_get_only_their_own_chunks_in_order(debug_daemon: DaemonThread) -> None:
    results: dict[str, list] = {}

    def run(name: str, seed: int, duration_s: float) -> None:
        with Client(debug_daemon.zmq) as client:
            results[name] = _events(client, f"prompt {name}", duration_s=duration_s, seed=seed, job=name)

    threads = [threading.Thread(target=run, args=("alpha", 1, 2.0)), threading.Thread(target=run, args=("beta", 2, 1.5))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    alpha = _check_stream(results["alpha"], "alpha", 32000, 2.0)
    beta = _check_stream(results["beta"], "beta", 32000, 1.5)
    assert np.abs(alpha).max() > 0 and np.abs(beta).max() > 0
    # Same seed and prompt again: the same audio (the stream carries the model's output exactly).
    with Client(debug_daemon.zmq) as client:
        again = _check_stream(_events(client, "prompt beta", duration_s=1.5, seed=2, job="beta2"), "beta2", 32000, 1.5)
    np.testing.assert_array_equal(again, beta)


def test_saved_file_matches_streamed_audio(debug_daemon: DaemonThread) -> None:
    with Client(debug_daemon.zmq) as client:
        rendered = client.generate("saved", duration_s=1.0, seed=5, save=True).collect()
    assert rendered.path is not None and rendered.path.endswith(".wav")
    data, rate = sf.read(rendered.path, dtype="float32", always_2d=True)
    assert rate == 32000
    np.testing.assert_array_equal(data.T, rendered.audio)


def test_continue_and_status_over_zmq(debug_daemon: DaemonThread, tmp_path) -> None:
    prompt = tmp_path / "region.wav"
    t = np.arange(16000) / 32000
    sf.write(prompt, (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), 32000)
    with Client(debug_daemon.zmq) as client:
        events = list(client.continue_(prompt, duration_s=1.0, prompt="more", seed=3, job="cont"))
        _check_stream(events, "cont", 32000, 1.0)
        status = client.status()
    assert status.models == ("debug/musicgen",) and status.default_model == "debug/musicgen"
    assert status.running == 0 and status.queued == 0 and status.device == "cpu"
    assert status.engine == "float32" and status.engines == ("float32",)  # the engine in use
    # The done event says where the job's time went (measured on the daemon's worker thread).
    done = events[-1]
    assert done.engine == "float32" and done.decode_s > 0 and done.codec_s > 0 and done.early_step_ms > 0
    assert done.late_step_ms is None  # 1 s never reaches the last tenth of a 30 s window


def test_unknown_model_is_an_error_event_and_the_daemon_serves_on(debug_daemon: DaemonThread) -> None:
    with Client(debug_daemon.zmq) as client:
        events = _events(client, "x", duration_s=1.0, model="debug/no-such-preset", job="nomodel")
        assert isinstance(events[-1], Error) and events[-1].code == "unknown_model"
        assert "debug/no-such-preset" in events[-1].message
        assert isinstance(_events(client, "y", duration_s=0.5, job="after")[-1], Done)


@pytest.mark.parametrize(
    "frames, code",
    [
        ([b"\xff\xfe garbage"], "bad_message"),
        ([b""], "bad_message"),  # one empty frame: a body, not a REQ delimiter with nothing after it
        ([b"[1, 2]"], "bad_message"),
        ([b'{"v": 1, "type": "explode", "id": "r1"}'], "bad_message"),
        ([b'{"v": 99, "type": "status", "id": "r1"}'], "unsupported_version"),
        ([b'{"v": 1, "type": "generate", "id": "r1", "duration_s": 1.0}'], "invalid_argument"),
        ([b'{"v": 1, "type": "generate", "id": "r1", "prompt": 5, "duration_s": 1.0}'], "invalid_argument"),
        ([b'{"v": 1, "type": "generate", "id": "r1", "prompt": "a", "duration_s": "long"}'], "invalid_argument"),
        ([b'{"v": 1, "type": "generate", "id": "r1", "prompt": "a", "duration_s": NaN}'], "invalid_argument"),
        ([b'{"v": 1, "type": "generate", "id": "r1", "prompt": "a", "duration_s": 1e9}'], "duration_too_long"),
        ([b'{"v": 1, "type": "generate", "id": "r1", "prompt": "a", "duration_s": 1, "colour": "red"}'], "invalid_argument"),
        ([b'{"v": 1, "type": "generate", "id": "r1", "prompt": "a", "duration_s": 1, "job": "../etc"}'], "invalid_argument"),
        ([b'{"v": 1, "type": "cancel", "id": "r1", "job": "nobody"}'], "not_found"),
        ([b'{"v": 1, "type": "generate", "id": "r1", "prompt": "a", "duration_s": 1, "reply_port": 9000}'],
         "invalid_argument"),
        ([b'{"v": 1, "type": "jukebox_sample", "id": "r1", "duration_s": -1}'], "invalid_argument"),
        ([b'{"v": 1, "type": "generate", "id": "r1", "prompt": "a", "duration_s": 1, "save": true, "format": "flac",'
          b' "bit_depth": 32}'], "invalid_argument"),
        ([b'{"v": 1, "type": "status", "id": "r1"}', b"extra"], "bad_message"),
        ([b'{"v": 1, "type": "status", "id": "r1", "pad": "' + b"x" * (wire.MAX_HEADER_BYTES + 10) + b'"}'],
         "message_too_large"),
    ],
)
def test_malformed_requests_get_an_error_event_then_the_next_request_is_served(
        debug_daemon: DaemonThread, frames: list[bytes], code: str) -> None:
    context = zmq.Context()
    sock = context.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 10000)
    sock.connect(debug_daemon.zmq)
    try:
        sock.send_multipart(frames)
        reply = wire.decode_event(sock.recv_multipart())
        assert isinstance(reply, Error) and reply.code == code, reply
        try:
            header = json.loads(frames[0])
        except ValueError:
            header = None
        assert reply.re == (header.get("id") if isinstance(header, dict) and len(frames[0]) < 1000 else None)
        sock.send_multipart(wire.encode(Generate("fine", 0.5, id="next", chunks=False)))
        kinds = []
        while not kinds or kinds[-1] not in ("done", "error"):
            kinds.append(wire.decode_event(sock.recv_multipart()).TYPE)
        assert kinds[0] == "accepted" and kinds[-1] == "done"
    finally:
        sock.close()
        context.term()


def test_oversized_frame_drops_only_that_peer(debug_daemon: DaemonThread) -> None:
    context = zmq.Context()
    big = context.socket(zmq.DEALER)
    big.setsockopt(zmq.LINGER, 0)
    big.connect(debug_daemon.zmq)
    big.send_multipart([b"x" * (17 * 1024 * 1024)])
    try:
        with Client(debug_daemon.zmq, timeout_s=20) as client:
            assert client.status().protocol == 1
    finally:
        big.close()
        context.term()


def test_req_style_delimiter_is_tolerated(debug_daemon: DaemonThread) -> None:
    context = zmq.Context()
    sock = context.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 10000)
    sock.connect(debug_daemon.zmq)
    try:
        sock.send_multipart(wire.encode(wire.decode_request([b'{"v": 1, "type": "status", "id": "q"}'])))
        reply = wire.decode_event(sock.recv_multipart())
        assert reply.TYPE == "status" and reply.re == "q"
        # A REQ peer's empty body comes after its delimiter: refused, and the reply still reaches it.
        sock.send_multipart([b""])
        reply = wire.decode_event(sock.recv_multipart())
        assert isinstance(reply, Error) and reply.code == "bad_message", reply
    finally:
        sock.close()
        context.term()


def test_pub_monitor_sees_job_events(debug_daemon: DaemonThread) -> None:
    context = zmq.Context()
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.RCVTIMEO, 10000)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(debug_daemon.pub)
    try:
        # PUB/SUB joins asynchronously: probe with status requests until the monitor hears one.
        with Client(debug_daemon.zmq) as client:
            sub.setsockopt(zmq.RCVTIMEO, 200)
            for _ in range(50):
                client.status()
                try:
                    sub.recv_multipart()
                    break
                except zmq.Again:
                    continue
            sub.setsockopt(zmq.RCVTIMEO, 10000)
            _events(client, "watched", duration_s=0.5, job="watched")
        seen = []
        while "done" not in seen:
            topic, *frames = sub.recv_multipart()
            event = wire.decode_event(frames)
            assert topic.decode() == event.TYPE
            if getattr(event, "job", None) == "watched":
                seen.append(event.TYPE)
        assert seen[0] == "accepted" and "chunk" in seen
    finally:
        sub.close()
        context.term()


def test_a_sub_socket_receives_only_the_topics_it_subscribes_to(fake_daemon: DaemonThread) -> None:
    with Monitor(fake_daemon.pub) as monitor, Client(fake_daemon.zmq) as client:
        # As docs/protocol.md's Frames says: the topic frame is the event's type, matched as a prefix.
        monitor.sock.setsockopt(zmq.UNSUBSCRIBE, b"")
        for topic in (b"status", b"done"):
            monitor.sock.setsockopt(zmq.SUBSCRIBE, topic)
        monitor.sync(client)
        assert isinstance(list(client.generate("x", duration_s=0.5, job="topics"))[-1], Done)
        topic, *frames = monitor.sock.recv_multipart()
        done = wire.decode_event(frames)
        assert topic == b"done" and isinstance(done, Done) and done.job == "topics"


def test_done_describes_the_streamed_audio_and_the_file_is_at_out_sample_rate(debug_daemon: DaemonThread) -> None:
    with Client(debug_daemon.zmq) as client:
        events = list(client.generate("rate", duration_s=1.0, seed=3, save=True, out_sample_rate=48000))
    started, done = events[1], events[-1]
    chunks = [event for event in events if isinstance(event, Chunk)]
    assert isinstance(started, Started) and isinstance(done, Done), done
    assert done.sample_rate == started.sample_rate == 32000 and {c.sample_rate for c in chunks} == {32000}
    assert done.frames == sum(chunk.frames for chunk in chunks) == 32000
    info = sf.info(done.path)
    assert (info.samplerate, info.frames) == (48000, 48000)


def test_cancel_stops_the_real_engine_mid_render(debug_daemon: DaemonThread) -> None:
    with Client(debug_daemon.zmq) as client, Client(debug_daemon.zmq) as control:
        stream = client.generate("long", duration_s=120.0, job="real-cancel", save=True)
        progress = None
        for event in stream:
            if isinstance(event, Progress):
                progress = event
                break
        assert progress is not None and progress.done < progress.total
        control.cancel("real-cancel")
        rest = list(stream)
        assert isinstance(rest[-1], Error) and rest[-1].code == "cancelled"
        # It stopped early: far fewer steps than the render has, and nothing was saved. Chunks
        # stream while a render runs, so some may come between the progress and the cancel
        # taking effect; together they must be far short of the render's audio.
        last = [e for e in rest if isinstance(e, Progress)]
        assert not last or last[-1].done < progress.total // 2
        streamed_s = sum(e.frames / e.sample_rate for e in rest if isinstance(e, Chunk))
        assert streamed_s < 60.0
        assert client.status().running == 0
    assert not (debug_daemon.config.out_dir / "real-cancel.wav").exists()


def test_saved_file_format_rate_and_depth(debug_daemon: DaemonThread) -> None:
    with Client(debug_daemon.zmq) as client:
        rendered = client.generate("flac", duration_s=1.0, seed=2, save=True, format="flac", out_sample_rate=48000,
                                   bit_depth=16, chunks=False).collect()
        info = sf.info(rendered.path)
        assert (info.format, info.subtype, info.samplerate, info.frames) == ("FLAC", "PCM_16", 48000, 48000)
        # FLAC cannot hold 32-bit integers: the schema refuses it, here in the client before it is sent
        # (the daemon's own refusal, before acceptance, is among the malformed requests above).
        with pytest.raises(InvalidArgument, match="FLAC stores 16 or 24-bit samples"):
            client.generate("bad", duration_s=1.0, save=True, format="flac", bit_depth=32)
        # Float samples by name (the CLI's --bit-depth float): a WAV only.
        rendered = client.generate("float", duration_s=0.5, seed=2, save=True, bit_depth="float",
                                   chunks=False).collect()
        assert sf.info(rendered.path).subtype == "FLOAT"
        with pytest.raises(InvalidArgument, match="not 32-bit float"):
            client.generate("bad", duration_s=1.0, save=True, format="flac", bit_depth="float")


def test_melody_on_a_model_without_melody_is_unsupported(debug_daemon: DaemonThread, tmp_path) -> None:
    melody = tmp_path / "melody.wav"
    sf.write(melody, np.zeros(32000, np.float32), 32000)
    with Client(debug_daemon.zmq) as client:
        events = list(client.generate("x", duration_s=1.0, melody=str(melody)))
    assert isinstance(events[-1], Error) and events[-1].code == "unsupported"


def test_inline_audio_continues_exactly_like_the_same_file(debug_daemon: DaemonThread, tmp_path) -> None:
    rng = np.random.default_rng(0)
    region = (0.2 * rng.standard_normal((1, 24000))).astype(np.float32)
    path = tmp_path / "region.wav"
    sf.write(path, region.T, 32000, subtype="FLOAT")
    with Client(debug_daemon.zmq) as client:
        from_file = client.continue_(path, duration_s=1.0, seed=11).collect()
        inline = client.continue_(region, duration_s=1.0, seed=11, sample_rate=32000).collect()
        with pytest.raises(BadAudio):  # refused by the client before anything is sent
            client.continue_(np.zeros((1, 0), np.float32), duration_s=1.0, sample_rate=32000)
    np.testing.assert_array_equal(inline.audio, from_file.audio)
    assert inline.audio.shape == (1, 32000)


def test_a_real_model_folder_that_fails_to_load(debug_daemon: DaemonThread, tmp_path) -> None:
    folder = tmp_path / "broken-model"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "musicgen"}')
    with Client(debug_daemon.zmq) as client:
        events = list(client.generate("x", duration_s=0.5, model=str(folder), job="broken-folder"))
        assert isinstance(events[-1], Error) and events[-1].code == "model_unavailable"
        assert str(folder) in events[-1].message
        assert isinstance(list(client.generate("y", duration_s=0.5))[-1], Done)
        assert client.models().loaded == ("debug/musicgen",)


def test_the_started_event_reports_the_seed_and_replaying_it_gives_the_same_audio(debug_daemon: DaemonThread) -> None:
    with Client(debug_daemon.zmq) as client:
        drawn = _events(client, "a seed of its own", duration_s=1.0)
        started = drawn[1]
        assert isinstance(started, Started) and isinstance(started.seed, int) and 0 <= started.seed < DRAWN_SEED_LIMIT
        again = _events(client, "a seed of its own", duration_s=1.0, seed=started.seed)
        other = _events(client, "a seed of its own", duration_s=1.0, seed=started.seed + 1)
    assert again[1].seed == started.seed and other[1].seed == started.seed + 1  # a given seed is reported as is
    audio = _check_stream(drawn, drawn[0].job, 32000, 1.0)
    np.testing.assert_array_equal(audio, _check_stream(again, again[0].job, 32000, 1.0))
    assert not np.array_equal(audio, _check_stream(other, other[0].job, 32000, 1.0))
