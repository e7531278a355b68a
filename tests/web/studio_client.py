"""A studio's client for the web tests, over real sockets: raw HTTP GETs (paths sent as given) and
tabs' WebSockets that send requests and collect their events."""

from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from daemon_harness import DaemonThread

from daemon.web import frames


def studio_url(daemon: DaemonThread) -> tuple[int, str]:
    """The studio's port and token, from the URL the daemon printed."""
    url = daemon.addresses.web_url
    assert url is not None
    parts = urlsplit(url)
    return int(parts.port or 0), parts.query.removeprefix("token=")


def get(daemon: DaemonThread, path: str, headers: dict[str, str] | None = None, *,
        host: str | None = None) -> tuple[int, bytes]:
    """A raw GET: the path is sent exactly as given (no client-side normalisation of `..`)."""
    port, _ = studio_url(daemon)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.putrequest("GET", path, skip_host=True, skip_accept_encoding=True)
        if host != "":
            connection.putheader("Host", host or f"127.0.0.1:{port}")
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


async def open_tab(daemon: DaemonThread, *, token: str | None,
                   origin: str | None = None) -> aiohttp.ClientWebSocketResponse:
    port, _ = studio_url(daemon)
    query = "" if token is None else f"?token={token}"
    session = aiohttp.ClientSession()
    headers = {"Origin": origin} if origin else {}
    try:
        socket = await session.ws_connect(f"ws://127.0.0.1:{port}/ws{query}", headers=headers, max_msg_size=0)
    except BaseException:
        await session.close()
        raise
    socket._riffd_session = session  # type: ignore[attr-defined]
    return socket


async def close_tab(socket: aiohttp.ClientWebSocketResponse) -> None:
    await socket.close()
    await socket._riffd_session.close()  # type: ignore[attr-defined]


async def events_until_done(socket: aiohttp.ClientWebSocketResponse, request_id: str) -> list[dict[str, Any]]:
    """The events answering request `request_id`, up to its `done` or `error`."""
    events = []
    while True:
        message = await socket.receive(timeout=30)
        if message.type is aiohttp.WSMsgType.TEXT:
            header = json.loads(message.data)
        elif message.type is aiohttp.WSMsgType.BINARY:
            header = json.loads(bytes(frames.unpack(message.data)[0]))
        else:
            raise AssertionError(f"socket ended: {message}")
        if header.get("re") == request_id:
            events.append(header)
            if header["type"] in ("done", "error"):
                return events


async def web_request(daemon: DaemonThread, fields: dict[str, Any]) -> list[dict[str, Any]]:
    """One request from a fresh tab (with the token), and its events."""
    socket = await open_tab(daemon, token=studio_url(daemon)[1])
    try:
        await socket.send_str(json.dumps({"v": 1, "id": "q", **fields}))
        return await events_until_done(socket, "q")
    finally:
        await close_tab(socket)
