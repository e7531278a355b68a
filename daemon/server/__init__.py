"""The network side: OSC (UDP and TCP) and ZeroMQ endpoints, request handling, event routing."""

from daemon.server.app import Daemon, default_loader

__all__ = ["Daemon", "default_loader"]
