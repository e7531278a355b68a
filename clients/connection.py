"""Noticing that the daemon went away, for the jobs that go with it (issue 18).

A daemon journals only the jobs it saves (`save` true; jams never): those a daemon restarted on
the same folder resumes, and their stream goes on. Any other job ends with the daemon that ran
it, so when the connection drops the client ends its stream at once with an `error` event of its
own, code `connection_lost`, instead of waiting out its timeout for events that cannot come.
"""

from __future__ import annotations

import zmq

from protocol.errors import ConnectionLost
from protocol.messages import Error, JamStart, Request

#: What a client's socket monitor reports: connections made (handshake done) and dropped.
MONITORED_EVENTS = zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED


def lost_with_daemon(request: Request) -> bool:
    """Whether the daemon keeps `request`'s job only in memory (a daemon that stops loses it)."""
    return getattr(request, "save", None) is not True or isinstance(request, JamStart)


class ConnectionWatch:
    """Reads a socket monitor's events: a drop is a connection that had been made and ended (a
    handshake a CurveZMQ daemon refused never was made, so its end is not one)."""

    def __init__(self) -> None:
        self._up = False

    def dropped(self, event: int) -> bool:
        """Note one monitor event (its `event` number); True if it is a drop."""
        if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            self._up = True
        elif event == zmq.EVENT_DISCONNECTED and self._up:
            self._up = False
            return True
        return False


def connection_lost(request: Request, endpoint: str) -> Error:
    """The event that ends the stream of a job the daemon took with it."""
    job = getattr(request, "job", None) or ""
    return Error(job=job, code=ConnectionLost.code, re=request.id,
                 message=f"the connection to the daemon at {endpoint} was lost during the job (the daemon stopped "
                         "or restarted?); a job the daemon does not save is not resumed: run it again")


__all__ = ["MONITORED_EVENTS", "ConnectionWatch", "connection_lost", "lost_with_daemon"]
