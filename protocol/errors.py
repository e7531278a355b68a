"""Typed errors that travel to clients as error events with a code and a message."""

from __future__ import annotations


class RiffdError(Exception):
    """An error a user can act on: `code` is stable for programs, `message` is for people."""

    code = "internal"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.message


class InvalidArgument(RiffdError):
    """A request field is missing, of the wrong type or out of range."""

    code = "invalid_argument"


class UnknownModel(RiffdError):
    """The model id names nothing riffd can find or fetch."""

    code = "unknown_model"


class ModelUnavailable(RiffdError):
    """The model exists but cannot be loaded here (offline and not cached, out of memory...)."""

    code = "model_unavailable"


class BadAudio(RiffdError):
    """An audio input is missing, unreadable, corrupt, empty or out of limits."""

    code = "bad_audio"


class Unsupported(RiffdError):
    """The request asks a model for something it cannot do (melody on a non-melody model...)."""

    code = "unsupported"


class Cancelled(RiffdError):
    """The job was cancelled by its client or by shutdown."""

    code = "cancelled"


# Daemon and protocol errors (added with the daemon, issue 4).


class BadMessage(RiffdError):
    """A message could not be decoded: garbage bytes, unknown type or address, bad framing."""

    code = "bad_message"


class MessageTooLarge(RiffdError):
    """A message or frame is over the transport's size limit."""

    code = "message_too_large"


class UnsupportedVersion(RiffdError):
    """The message speaks a protocol version this daemon does not."""

    code = "unsupported_version"


class QueueFull(RiffdError):
    """The scheduler's queue is at its limit; the request was refused at once."""

    code = "queue_full"


class NotFound(RiffdError):
    """The request names a job (or model) the daemon does not have."""

    code = "not_found"


class DuplicateJob(RiffdError):
    """A client-chosen job id is already in use by a queued or running job."""

    code = "duplicate_job"


class OutputError(RiffdError):
    """An output file could not be written (unwritable folder, disk full...)."""

    code = "output_error"


class ShuttingDown(RiffdError):
    """The daemon is stopping: queued and running jobs end with this error."""

    code = "shutting_down"


class ConnectionLost(RiffdError):
    """Made by riffd's Python clients, never sent by the daemon: the connection dropped (the daemon
    stopped or restarted) during a job it does not save (not resumed) or a request awaiting its reply."""

    code = "connection_lost"


# Hardening (issue 7): each limit and refusal has its own code, so a program can tell a prompt
# that is too long from a queue that is full without parsing the message.


class PathNotAllowed(RiffdError):
    """A path in a request is outside the folders the daemon may read (or write): a relative path
    (the daemon does not share the client's folder), `..`, a symlink that leads out, or an absolute
    path elsewhere (the daemon reads --out and its --audio-dir folders)."""

    code = "path_not_allowed"


class DurationTooLong(InvalidArgument):
    """The request asks for more seconds than the daemon's --max-duration-s."""

    code = "duration_too_long"


class PromptTooLong(InvalidArgument):
    """A text prompt, Jukebox label or lyrics is longer than the protocol's limit."""

    code = "prompt_too_long"


class AudioTooLarge(BadAudio):
    """An audio input (file or inline samples) is longer than the daemon's --max-audio-s."""

    code = "audio_too_large"


class TooManyJobs(RiffdError):
    """This client already has --max-jobs-per-client jobs queued or running."""

    code = "too_many_jobs"


class OutOfMemory(RiffdError):
    """The model ran out of memory on this job; the memory was released and the daemon serves on."""

    code = "out_of_memory"


# The daemon's sound card (issue 5).


class PlaybackUnavailable(RiffdError):
    """The request asks to play on the daemon's sound card (`play` true), which cannot be opened or has
    gone (no device, no JACK or PulseAudio server, the device refused the stream): the message says
    why. The job ends before any audio is made; send it without `play` to render it unheard."""

    code = "playback_unavailable"


# Jams (issue 14).


class BadSnapshot(RiffdError):
    """A jam snapshot file is unreadable, corrupt, from another program or version, or for another model."""

    code = "bad_snapshot"


# Transport limits on ZeroMQ (issue 18), as OSC has its own: each with its own code.


class TooManyPeers(RiffdError):
    """The ZeroMQ endpoint already serves --zmq-max-peers connections; this one waits for a free slot."""

    code = "too_many_peers"


class RateLimited(RiffdError):
    """This ZeroMQ peer sent more requests a second than --zmq-rate-limit; the request was not read."""

    code = "rate_limited"


# Model workers on a Ray cluster (issue 19).


class WorkerLost(RiffdError):
    """The cluster worker running the job died or stopped answering after the job's audio had begun
    (the message names the worker and its node); the daemon serves on with the other workers."""

    code = "worker_lost"
