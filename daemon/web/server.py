"""The web studio's HTTP side (aiohttp on the daemon's own asyncio loop).

Routes, and nothing else: `/` and `/static/NAME` (the files shipped in daemon/web/static, read
once into memory, so no URL can reach the disk), `/ws` (the tab's WebSocket: requests in,
events out), `/takes/JOB` and `/takes/JOB/export` (a take the studio made, as saved or
converted). Every request passes the Host and Origin checks; the WebSocket and the takes need
the token.
"""

from __future__ import annotations

import asyncio
import logging
import mimetypes
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

from aiohttp import WSMsgType, web
from aiohttp.http_exceptions import HttpProcessingError

from daemon.web import frames
from daemon.web.guard import WebGuard
from daemon.web.peer import WebPeer
from daemon.web.studio import Studio
from daemon.web.takes import MEDIA_TYPES, ExportFormat, Take, TakeReplaced, export
from protocol.errors import InvalidArgument, NotFound, RiffdError
from protocol.messages import FLOAT_DEPTH, Error, check_job_id

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
#: What a page may load and connect to: this studio only (no inline script, no other site).
CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                           "connect-src 'self'; media-src 'self' blob:; worker-src 'self'; "
                           "frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
_TYPES = {".js": "text/javascript; charset=utf-8", ".html": "text/html; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png"}

RequestHandlerFn = Callable[[web.Request], Awaitable[web.StreamResponse]]


def load_static(folder: Path = STATIC_DIR) -> dict[str, tuple[bytes, str]]:
    """The shipped files by name (flat folder), with their content types."""
    files = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and not path.name.startswith("."):
            kind = _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            files[path.name] = (path.read_bytes(), kind)
    return files


class _QuietBadRequests(logging.Filter):
    """aiohttp logs each malformed request with a traceback at ERROR: a stranger could fill the log
    with them. They are answered 400 all the same; this keeps one line at DEBUG instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError) and not isinstance(exc, ConnectionError):
            log.debug("web: malformed request refused: %s", exc)
            return False
        return True


class WebServer:
    """The aiohttp application around a Studio."""

    def __init__(self, studio: Studio, guard: WebGuard) -> None:
        self.studio = studio
        self.guard = guard
        self._static = load_static()
        self._sockets: set[web.WebSocketResponse] = set()
        self.app = web.Application(middlewares=[self._checks], client_max_size=64 * 1024)
        self.app.router.add_get("/", self._index)
        self.app.router.add_get("/static/{name}", self._static_file)
        self.app.router.add_get("/ws", self._websocket)
        self.app.router.add_get("/takes/{job}", self._take)
        self.app.router.add_get("/takes/{job}/export", self._export)
        self._runner: web.AppRunner | None = None
        self.refused = 0

    async def start(self, host: str, port: int) -> int:
        """Listen; return the port (resolved when 0 was asked for). OSError if it is taken."""
        if not any(isinstance(f, _QuietBadRequests) for f in logging.getLogger("aiohttp.server").filters):
            logging.getLogger("aiohttp.server").addFilter(_QuietBadRequests())
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        bind_host = None if host in ("*", "") else host
        site = web.TCPSite(self._runner, bind_host, port)
        try:
            await site.start()
        except OSError:
            await self._runner.cleanup()
            self._runner = None
            raise
        bound = [address for address in self._runner.addresses if isinstance(address, tuple)]
        self.guard.port = int(bound[0][1]) if bound else port
        return self.guard.port

    async def close(self) -> None:
        for socket in list(self._sockets):
            await socket.close(code=1001, message=b"the daemon is stopping")
        self.studio.close_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- every request ----------------------------------------------------------------------

    @web.middleware
    async def _checks(self, request: web.Request, handler: RequestHandlerFn) -> web.StreamResponse:
        host = request.headers.get("Host")
        if not self.guard.host_allowed(host):
            return self._refuse(request, 403, f"Host {host!r} is not this studio (DNS rebinding?)")
        if not self.guard.origin_allowed(request.headers.get("Origin"), host):
            return self._refuse(request, 403, "cross-site requests are refused")
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            # Answered here rather than re-raised, so it gets the headers below too.
            response = web.Response(status=exc.status, reason=exc.reason, text=exc.text,
                                    content_type=exc.content_type)
        if not response.prepared:
            # A WebSocket is prepared (its headers sent) by the handler itself.
            response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
            response.headers.setdefault("X-Content-Type-Options", "nosniff")
            response.headers.setdefault("Referrer-Policy", "no-referrer")  # the token is in the URL
            response.headers.setdefault("Cross-Origin-Resource-Policy", "same-origin")
        return response

    def _refuse(self, request: web.Request, status: int, reason: str) -> web.Response:
        # Any web page can make a browser send these (an <img src>): the log gets the 1st, 100th and
        # every 10000th, like OSC's refusals, and the path escaped, so a %0A in it cannot forge a line.
        self.refused += 1
        if self.refused in (1, 100) or self.refused % 10000 == 0:
            log.warning("web: refused %s %s: %s (%d refused so far)", request.method, ascii(request.path[:200]),
                        reason, self.refused)
        return web.Response(status=status, text=f"riffd: {reason}\n")

    def _authorised(self, request: web.Request) -> bool:
        given = request.query.get("token") or request.headers.get("X-Riffd-Token")
        return self.guard.token_ok(given)

    # -- routes ---------------------------------------------------------------------------------

    async def _index(self, request: web.Request) -> web.Response:
        body, kind = self._static["index.html"]
        return web.Response(body=body, headers={"Content-Type": kind, "Cache-Control": "no-store"})

    async def _static_file(self, request: web.Request) -> web.Response:
        found = self._static.get(request.match_info["name"])
        if found is None:
            raise web.HTTPNotFound(text="riffd: no such file\n")
        body, kind = found
        return web.Response(body=body, headers={"Content-Type": kind, "Cache-Control": "no-cache"})

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        if not self._authorised(request):
            return self._refuse(request, 401, "the studio needs its token (open the URL `riffd serve` printed)")
        socket = web.WebSocketResponse(max_msg_size=self.studio.max_upload_bytes, heartbeat=30.0, compress=False)
        await socket.prepare(request)
        self._sockets.add(socket)
        peer = self.studio.open(partial(WebPeer, socket, host=request.remote))
        writer = asyncio.get_running_loop().create_task(peer.write_loop(), name=f"riffd-web-tab-{peer.id}")
        try:
            async for message in socket:
                if message.type is WSMsgType.TEXT:
                    self.studio.receive(peer, [message.data.encode()])
                elif message.type is WSMsgType.BINARY:
                    self._receive_binary(peer, message.data)
                elif message.type is WSMsgType.ERROR:
                    # aiohttp closes with 1009 when a message is over max_msg_size.
                    log.info("web: tab %d: %s", peer.id, socket.exception())
        finally:
            self.studio.close(peer)
            self._sockets.discard(socket)
            peer.close()
            writer.cancel()
        return socket

    def _receive_binary(self, peer: WebPeer, data: bytes) -> None:
        try:
            parts = frames.unpack(data)
        except RiffdError as exc:
            peer.push_event(Error(job="", code=exc.code, message=exc.message))
            return
        self.studio.receive(peer, parts)

    async def _take(self, request: web.Request) -> web.StreamResponse:
        if not self._authorised(request):
            return self._refuse(request, 401, "downloads need the studio's token")
        take = self._find_take(request)
        name = f"{take.job}.{take.format}"
        return web.FileResponse(take.path, headers={
            "Content-Type": MEDIA_TYPES.get(take.format, "application/octet-stream"),
            "Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"})

    async def _export(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return self._refuse(request, 401, "downloads need the studio's token")
        take = self._find_take(request)
        try:
            target = ExportFormat.parse(dict(request.query))
            body = await asyncio.get_running_loop().run_in_executor(None, export, take, target)
        except InvalidArgument as exc:
            raise web.HTTPBadRequest(text=f"riffd: {exc.message}\n") from None
        except TakeReplaced as exc:
            raise web.HTTPGone(text=f"riffd: {exc.message}\n") from None
        rate = f"-{target.sample_rate}hz" if target.sample_rate else ""
        depth = ("" if target.bit_depth is None else "-float" if target.bit_depth == FLOAT_DEPTH
                 else f"-{target.bit_depth}bit")
        name = f"{take.job}{rate}{depth}.{target.format}"
        return web.Response(body=body, headers={
            "Content-Type": MEDIA_TYPES[target.format], "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store"})

    def _find_take(self, request: web.Request) -> Take:
        job = request.match_info["job"]
        try:
            check_job_id(job)
            return self.studio.takes.get(job)
        except TakeReplaced as exc:
            # Never another job's file under this take's name: gone for good, and saying why.
            raise web.HTTPGone(text=f"riffd: {exc.message}\n") from None
        except (InvalidArgument, NotFound) as exc:
            raise web.HTTPNotFound(text=f"riffd: {exc.message}\n") from None


__all__ = ["CONTENT_SECURITY_POLICY", "WebServer", "load_static"]
