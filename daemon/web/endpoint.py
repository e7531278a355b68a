"""The web studio as one of the daemon's endpoints: started beside OSC and ZeroMQ, a monitor on the router."""

from __future__ import annotations

import logging

from daemon.config import DaemonConfig, is_loopback_host
from daemon.residency import ModelPool
from daemon.scheduler import Scheduler
from daemon.server.handlers import RequestHandler
from daemon.web.guard import WebGuard
from daemon.web.server import WebServer
from daemon.web.studio import Studio
from protocol.messages import Event
from protocol.wire import MAX_MESSAGE_BYTES

log = logging.getLogger(__name__)


class WebEndpoint:
    """The studio at http://HOST:PORT/; `url` carries the token once started."""

    def __init__(self, config: DaemonConfig, handler: RequestHandler, scheduler: Scheduler, pool: ModelPool,
                 *, token: str | None = None) -> None:
        self._config = config
        self.guard = WebGuard.for_daemon(token=token, remote=config.remote)
        # Uploads (inline audio for continue and melody) are bounded like a ZeroMQ message.
        self.studio = Studio(config, handler, handler.status, scheduler, pool, max_upload_bytes=MAX_MESSAGE_BYTES)
        self.server = WebServer(self.studio, self.guard)
        self.port = 0
        self.url = ""

    async def start(self) -> bool:
        """Listen; False (logged) if the port is taken: the daemon then serves on without the studio."""
        try:
            self.port = await self.server.start(self._config.host, self._config.web_port)
        except OSError as exc:
            log.error("web studio not started: cannot listen on %s:%d (%s); use --web-port or --no-web",
                      self._config.host, self._config.web_port, exc.strerror or exc)
            return False
        shown = self._config.host if is_loopback_host(self._config.host) else "127.0.0.1"
        shown = f"[{shown}]" if ":" in shown else shown
        self.url = f"http://{shown}:{self.port}/?token={self.guard.token}"
        return True

    def publish(self, event: Event) -> None:
        """The router's monitor hook."""
        self.studio.publish(event)

    async def close(self) -> None:
        await self.server.close()


__all__ = ["WebEndpoint"]
