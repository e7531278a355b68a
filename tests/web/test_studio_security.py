"""The studio's safety over real sockets: Host and Origin checks, the token, no files but its own,
bounded uploads; after each refusal the daemon serves on (the page, ZeroMQ, a job from the web)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import numpy as np
import pytest
from daemon_harness import DaemonThread, fake_loader, make_config, wait_for
from studio_client import close_tab, events_until_done, get, open_tab, studio_url, web_request

from clients import Client
from daemon.web import frames
from protocol import wire
from protocol.audio_ref import InlineAudio
from protocol.messages import Continue, Done, Status


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonThread]:
    out = tmp_path_factory.mktemp("studio-security")
    daemon = DaemonThread(make_config(out, models=("fake/fast",), max_audio_s=1.0), loader=fake_loader).start()
    yield daemon
    daemon.stop()


def serves_on(daemon: DaemonThread) -> None:
    """The page, ZeroMQ and a job from the web all still work."""
    assert get(daemon, "/")[0] == 200
    with Client(daemon.zmq, timeout_s=10) as client:
        assert isinstance(client.status(), Status)

    async def web_job() -> list[dict]:
        _, token = studio_url(daemon)
        socket = await open_tab(daemon, token=token)
        try:
            await socket.send_str(json.dumps({"v": 1, "type": "generate", "prompt": "x", "duration_s": 0.5,
                                              "save": True, "id": "still-here"}))
            return await events_until_done(socket, "still-here")
        finally:
            await close_tab(socket)

    events = asyncio.run(web_job())
    assert [e["type"] for e in events][0] == "accepted" and events[-1]["type"] == "done"


@pytest.mark.parametrize("host", ["evil.example:{port}", "rebound.attacker.test:{port}", "127.0.0.1:1",
                                  "localhost.attacker.test:{port}", "192.168.1.20:{port}", "", "[::1]:99"])
def test_a_wrong_host_is_refused(studio: DaemonThread, host: str) -> None:
    port, token = studio_url(studio)
    status, body = get(studio, f"/takes/x?token={token}", host=host.format(port=port))
    # No Host at all is malformed HTTP/1.1: aiohttp answers 400 before any route.
    assert status == (403 if host else 400) and b"Host" in body
    assert get(studio, "/", host=host.format(port=port))[0] in ((403,) if host else (400, 403))
    assert get(studio, "/", host=f"localhost:{port}")[0] == 200
    assert get(studio, "/", host=f"[::1]:{port}")[0] == 200


def test_a_foreign_origin_is_refused_on_http_and_on_the_websocket(studio: DaemonThread) -> None:
    port, token = studio_url(studio)
    for origin in ("http://evil.example", f"http://evil.example:{port}", "null", f"https://127.0.0.1:{port}",
                   f"http://127.0.0.1:{port + 1}"):
        assert get(studio, "/static/studio.js", {"Origin": origin})[0] == 403

        async def handshake(origin: str = origin) -> None:
            await open_tab(studio, token=token, origin=origin)

        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            asyncio.run(handshake())
        assert refused.value.status == 403
    assert get(studio, "/static/studio.js", {"Origin": f"http://127.0.0.1:{port}"})[0] == 200
    serves_on(studio)


def test_acting_needs_the_token(studio: DaemonThread) -> None:
    for token in (None, "", "wrong", studio_url(studio)[1][:-1]):
        async def handshake(token: str | None = token) -> None:
            await open_tab(studio, token=token)

        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            asyncio.run(handshake())
        assert refused.value.status == 401
    # Takes: a studio job's file is there, but not without the token.
    serves_on(studio)
    [take] = studio.daemon._web.studio.takes.all()[-1:]
    assert get(studio, f"/takes/{take.job}")[0] == 401
    assert get(studio, f"/takes/{take.job}?token=nope")[0] == 401
    status, body = get(studio, f"/takes/{take.job}?token={studio_url(studio)[1]}")
    assert status == 200 and body == take.path.read_bytes()
    # The page itself is no secret (it asks for the token in its URL).
    assert get(studio, "/")[0] == 200


def test_refusals_are_logged_escaped_and_rate_limited(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # Any web page can make a browser ask the studio (an <img src>): its refusals must neither forge
    # log lines (a %0A in the path) nor fill the log (one line each).
    forged = "/takes/x%0A2026-12-07%2011:51:04,000%20INFO%20daemon.server.app:%20FAKE%20LINE%1B[2K%E2%80%A8"
    with DaemonThread(make_config(tmp_path, models=("fake/fast",)), loader=fake_loader).start() as daemon:
        with caplog.at_level(logging.WARNING, logger="daemon.web.server"):
            assert get(daemon, forged)[0] == 401
            for index in range(249):
                assert get(daemon, f"/takes/x{index}")[0] == 401
        assert daemon.daemon._web.server.refused == 250
        serves_on(daemon)
    records = [record for record in caplog.records if record.name == "daemon.web.server"]
    assert len(records) == 2  # the 1st and the 100th
    first = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s").format(records[0])
    assert "\n" not in first and "\x1b" not in first and "\u2028" not in first
    assert "'/takes/x\\n2026-12-07 11:51:04,000 INFO daemon.server.app: FAKE LINE\\x1b[2K\\u2028'" in first
    assert "(1 refused so far)" in first and "(100 refused so far)" in records[1].getMessage()


def test_no_file_outside_the_static_folder_and_the_studios_own_takes(studio: DaemonThread) -> None:
    _, token = studio_url(studio)
    out = Path(studio.config.out_dir)
    # A file under --out the studio did not make (a ZeroMQ client's saved job).
    with Client(studio.zmq, timeout_s=10) as client:
        done = list(client.generate("zmq take", duration_s=0.5, job="zmq-take", save=True))[-1]
    assert isinstance(done, Done) and Path(done.path).is_file()
    (out / "secret.txt").write_text("not for the web")
    for path in ("/static/../daemon/config.py", "/static/%2e%2e%2fserver.py", "/static/..%2F..%2Fconfig.py",
                 "/static/%2e%2e/%2e%2e/pyproject.toml", "/../../etc/passwd", "/etc/passwd", "/static/",
                 "/static/.", "/takes/zmq-take", "/takes/..%2Fsecret.txt", "/takes/..%2F..%2Fetc%2Fpasswd",
                 "/takes/%2e%2e", "/takes/zmq-take/export", f"/takes/{'a' * 65}", "/static/index.html%00.js"):
        status, body = get(studio, f"{path}{'&' if '?' in path else '?'}token={token}")
        assert status in (400, 403, 404), (path, status)
        assert b"not for the web" not in body and b"[project]" not in body and b"root:" not in body
    serves_on(studio)


def test_uploads_are_bounded_and_validated_like_inline_audio(studio: DaemonThread) -> None:
    _, token = studio_url(studio)

    async def send(message: bytes | str) -> int | None | list[dict]:
        socket = await open_tab(studio, token=token)
        try:
            try:
                if isinstance(message, str):
                    await socket.send_str(message)
                else:
                    await socket.send_bytes(message)
            except ConnectionError:
                pass  # the daemon hung up mid-message (too big): its close code says why
            while True:
                reply = await socket.receive(timeout=30)
                if reply.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                    return socket.close_code
                header = json.loads(reply.data) if reply.type is aiohttp.WSMsgType.TEXT else {}
                if header.get("type") == "error":
                    return [header]
        finally:
            await close_tab(socket)

    # Bigger than a message may be (as on ZeroMQ): the socket is closed with 1009, nothing is decoded.
    limit = studio.daemon._web.studio.max_upload_bytes
    # (The client may see only the connection drop: the daemon hangs up while it is still sending.)
    assert asyncio.run(send(b"\0" * (limit + 1))) in (aiohttp.WSCloseCode.MESSAGE_TOO_BIG,
                                                      aiohttp.WSCloseCode.ABNORMAL_CLOSURE)
    wait_for(lambda: studio.daemon._web.studio.tabs == 0)
    serves_on(studio)
    # Inline audio longer than --max-audio-s (1 s here): refused with the same code as over ZeroMQ.
    long_audio = InlineAudio(np.zeros((1, 16000 * 3), np.float32), 16000)
    request = Continue(audio=long_audio, duration_s=0.5, id="too-long")
    [error] = asyncio.run(send(frames.pack(wire.encode(request))))
    assert (error["code"], error["re"]) == ("audio_too_large", "too-long")
    # A buffer whose length disagrees with its header, frames that do not add up, garbage.
    header, pcm = wire.encode(Continue(audio=InlineAudio(np.zeros((1, 800), np.float32), 16000), duration_s=0.5))
    [error] = asyncio.run(send(frames.pack([header, pcm[:-4]])))
    assert error["code"] == "bad_message"
    [error] = asyncio.run(send(frames.pack([header, pcm])[:-10]))
    assert error["code"] == "bad_message"
    [error] = asyncio.run(send(b"\xff" * 64))
    assert error["code"] == "bad_message"
    # NaN samples are bad audio, as anywhere.
    nan = np.full(800, np.nan, np.float32).tobytes()
    [error] = asyncio.run(send(frames.pack([header, nan])))
    assert error["code"] == "bad_audio"
    serves_on(studio)


def test_web_requests_pass_the_same_schema_as_zeromq(studio: DaemonThread) -> None:
    _, token = studio_url(studio)

    async def ask(fields: dict) -> dict:
        socket = await open_tab(studio, token=token)
        try:
            await socket.send_str(json.dumps({"v": 1, "id": "q", **fields}))
            return (await events_until_done(socket, "q"))[-1]
        finally:
            await close_tab(socket)

    error = asyncio.run(ask({"type": "generate", "prompt": "x", "duration_s": 1, "volume": 11}))
    assert error["code"] == "invalid_argument" and "unknown field 'volume'" in error["message"]
    error = asyncio.run(ask({"type": "generate", "prompt": "x", "duration_s": 1, "audio_prompt": "/etc/passwd"}))
    assert error["code"] == "path_not_allowed"
    error = asyncio.run(ask({"type": "subscribe", "port": 9000}))
    assert error["code"] == "unsupported"
    # A saved file its container cannot hold is refused with the request, not after it started.
    events = asyncio.run(web_request(studio, {"type": "generate", "prompt": "x", "duration_s": 0.25, "save": True,
                                              "format": "flac", "bit_depth": 32}))
    assert [event["type"] for event in events] == ["error"]
    assert events[0]["code"] == "invalid_argument" and "FLAC stores 16 or 24-bit" in events[0]["message"]
    assert asyncio.run(ask({"type": "generate", "prompt": "x", "duration_s": 0.25}))["type"] == "done"
    serves_on(studio)
