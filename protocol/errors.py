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
