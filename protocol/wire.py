"""ZeroMQ frames: a JSON header per message, and PCM as raw frames after it.

A message is `[header]`; a chunk event is `[header, pcm]`; a request with inline audio is
`[header, pcm, ...]`, each buffer referenced from the header (see protocol.audio_ref). The
header is a UTF-8 JSON object `{"v": PROTOCOL_VERSION, "type": ..., <fields>}`; PCM is
little-endian float32, `[channels, frames]` in C order (channel-major, not interleaved),
exactly `channels * frames * 4` bytes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from protocol.audio_ref import InlineAudio
from protocol.errors import BadMessage, InvalidArgument, MessageTooLarge, UnsupportedVersion
from protocol.messages import EVENTS, PROTOCOL_VERSION, REQUESTS, Chunk, Event, Request
from protocol.schema import Message

#: Headers are small; anything bigger is refused before it is parsed.
MAX_HEADER_BYTES = 64 * 1024
#: The most a whole request (header and PCM frames) may be. The daemon's libzmq drops a bigger one
#: unread and disconnects its sender, so no error event can answer it: `encode` refuses it instead.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
#: The PCM dtype on the wire.
PCM_DTYPE = np.dtype("<f4")

Frame = bytes | memoryview


def encode(message: Message) -> list[bytes]:
    """The frames of a request or event: inline audio and a chunk's `audio` get PCM frames."""
    header: dict[str, Any] = {"v": PROTOCOL_VERSION, "type": message.TYPE}
    buffers: list[bytes] = []
    for name, value in message.to_fields().items():
        if isinstance(value, InlineAudio):
            header[name] = {"buffer": len(buffers), "sample_rate": value.sample_rate, "channels": value.channels,
                            "frames": value.frames, "dtype": "float32"}
            buffers.append(value.samples.astype(PCM_DTYPE, copy=False).tobytes())
        else:
            header[name] = value
    frames = [json.dumps(header, separators=(",", ":"), allow_nan=False, ensure_ascii=False).encode(), *buffers]
    if isinstance(message, Chunk) and message.audio is not None:
        pcm = np.ascontiguousarray(message.audio, dtype=PCM_DTYPE)
        if pcm.shape != (message.channels, message.frames):
            raise ValueError(f"chunk audio shape {pcm.shape} does not match header {(message.channels, message.frames)}")
        frames.append(pcm.tobytes())
    if isinstance(message, Request):
        _check_request_size(message, frames)
    return frames


def _check_request_size(request: Request, frames: Sequence[bytes]) -> None:
    size = sum(len(frame) for frame in frames)
    if size <= MAX_MESSAGE_BYTES:
        return
    seconds = sum(value.frames / value.sample_rate for value in request.to_fields().values()
                  if isinstance(value, InlineAudio) and value.sample_rate > 0)
    inline = f" ({seconds:.1f} s of inline audio, sent as 32-bit float)" if seconds else ""
    raise MessageTooLarge(f"this {request.TYPE} request is {size / 1e6:.1f} MB{inline}, over the "
                          f"{MAX_MESSAGE_BYTES // 2**20} MiB a request to the daemon may be: send less audio, "
                          "or a path the daemon may read (riffd continue --send-path)")


def decode_request(frames: Sequence[Frame]) -> Request:
    """Parse a request's frames; raise a RiffdError saying what is wrong with them."""
    if not frames:
        raise BadMessage("a request has a header frame; the message has no frames")
    kind, header = _header(frames[0])
    cls = REQUESTS.get(kind)
    if cls is None:
        raise BadMessage(f"unknown request type {kind!r} (known: {', '.join(sorted(REQUESTS))})")
    message = cls.from_fields(_resolve_buffers(header, frames[1:]))
    assert isinstance(message, Request)
    return message


def decode_event(frames: Sequence[Frame]) -> Event:
    """Parse an event's frames; a chunk's PCM becomes `audio`, float32 `[channels, frames]`."""
    kind, header = _header(frames[0])
    cls = EVENTS.get(kind)
    if cls is None:
        raise BadMessage(f"unknown event type {kind!r}")
    event = cls.from_fields(header)
    assert isinstance(event, Event)
    if isinstance(event, Chunk):
        if len(frames) != 2:
            raise BadMessage(f"a chunk is a header and a PCM frame, got {len(frames)} frames")
        if event.dtype != "float32":
            raise BadMessage(f"chunk dtype {event.dtype!r} is not float32")
        pcm = memoryview(frames[1])
        expected = event.channels * event.frames * PCM_DTYPE.itemsize
        if pcm.nbytes != expected:
            raise BadMessage(f"chunk PCM is {pcm.nbytes} bytes, header says {expected}")
        audio = np.frombuffer(pcm, dtype=PCM_DTYPE).reshape(event.channels, event.frames).astype(np.float32)
        object.__setattr__(event, "audio", audio)
    elif len(frames) != 1:
        raise BadMessage(f"a {event.TYPE} event is one frame, got {len(frames)}")
    return event


_BUFFER_KEYS = {"buffer", "sample_rate", "channels", "frames", "dtype"}


def _resolve_buffers(header: dict[str, Any], buffers: Sequence[Frame]) -> dict[str, Any]:
    """Replace buffer references in a request header by InlineAudio; every frame used once."""
    used: set[int] = set()
    for name, value in list(header.items()):
        if not (isinstance(value, dict) and "buffer" in value):
            continue
        if set(value) != _BUFFER_KEYS or value["dtype"] != "float32":
            raise BadMessage(f"{name}: a buffer reference has exactly {sorted(_BUFFER_KEYS)}, dtype float32")
        index, channels, frames = value["buffer"], value["channels"], value["frames"]
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (index, channels, frames)):
            raise BadMessage(f"{name}: buffer, channels and frames must be non-negative integers")
        if index >= len(buffers) or index in used:
            raise BadMessage(f"{name}: buffer {index} is missing or used twice ({len(buffers)} attached)")
        used.add(index)
        pcm = memoryview(buffers[index])
        if pcm.nbytes != channels * frames * PCM_DTYPE.itemsize:
            raise BadMessage(f"{name}: buffer {index} is {pcm.nbytes} bytes, the reference says "
                             f"{channels * frames * PCM_DTYPE.itemsize}")
        # A copy: the samples must outlive the message and be writable for the model's tensors.
        samples = np.frombuffer(pcm, dtype=PCM_DTYPE).reshape(channels, frames).copy()
        header[name] = InlineAudio(samples, value["sample_rate"])
    if len(used) != len(buffers):
        raise BadMessage(f"{len(buffers) - len(used)} frame(s) after the header are not referenced by it")
    return header


def reply_ids(frames: Sequence[Frame]) -> tuple[str | None, str]:
    """Best effort (request id, job id) of a message that failed to decode, for its error event."""
    try:
        header = json.loads(bytes(frames[0])) if frames and len(frames[0]) <= MAX_HEADER_BYTES else None
    except (ValueError, UnicodeDecodeError, RecursionError):  # the message already failed to decode
        return None, ""
    if not isinstance(header, dict):
        return None, ""
    request_id = header.get("id")
    job = header.get("job")
    return (request_id if isinstance(request_id, str) else None), (job if isinstance(job, str) else "")


def _header(frame: Frame) -> tuple[str, dict[str, Any]]:
    """(type, fields) of a header frame, after the size, syntax and version checks."""
    size = len(frame)
    if size > MAX_HEADER_BYTES:
        raise MessageTooLarge(f"header frame is {size} bytes, over the limit of {MAX_HEADER_BYTES}")
    try:
        header = json.loads(bytes(frame), parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise BadMessage(f"header is not UTF-8: {exc}") from None
    except ValueError as exc:
        raise BadMessage(f"header is not JSON: {exc}") from None
    except RecursionError:
        raise BadMessage("header nests too deeply") from None
    if not isinstance(header, dict):
        raise BadMessage(f"header must be a JSON object, got {type(header).__name__}")
    version = header.pop("v", None)
    if version != PROTOCOL_VERSION:
        raise UnsupportedVersion(f"protocol version {version!r} is not supported (this side speaks {PROTOCOL_VERSION})")
    kind = header.pop("type", None)
    if not isinstance(kind, str):
        raise BadMessage("header has no string 'type'")
    return kind, header


def _reject_constant(name: str) -> float:
    raise InvalidArgument(f"{name} is not a valid number")


__all__ = ["MAX_HEADER_BYTES", "PCM_DTYPE", "decode_event", "decode_request", "encode", "reply_ids"]
