"""Where a job's audio goes besides the event stream: files now, the sound card later."""

from daemon.sinks.base import JobSink, SinkFactory
from daemon.sinks.files import FileSinkFactory

__all__ = ["FileSinkFactory", "JobSink", "SinkFactory"]
