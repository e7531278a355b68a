"""riffd clients: the Python client (sync and asyncio) and the `riffd` command line."""

from clients.aio import AsyncClient, AsyncJobStream
from clients.client import DEFAULT_ENDPOINT, Client, JobStream, Rendered

__all__ = ["DEFAULT_ENDPOINT", "AsyncClient", "AsyncJobStream", "Client", "JobStream", "Rendered"]
