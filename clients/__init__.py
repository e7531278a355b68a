"""riffd clients: the Python client (sync and asyncio) and the `riffd` command line."""

from clients.aio import AsyncClient, AsyncJamHandle, AsyncJobStream
from clients.client import DEFAULT_ENDPOINT, Client, JamHandle, JobStream, Rendered

__all__ = ["DEFAULT_ENDPOINT", "AsyncClient", "AsyncJamHandle", "AsyncJobStream", "Client", "JamHandle", "JobStream",
           "Rendered"]
