"""ZeroMQ's frames in one WebSocket message, so the web speaks protocol.wire unchanged.

A request or event is the list of frames protocol.wire makes (a JSON header, then PCM frames
for inline audio or a chunk). A frame-less header travels as a WebSocket text message; a
message with PCM as one binary message: each frame as a little-endian uint32 length and its
bytes. The page's wire.js packs and unpacks the same layout.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from protocol.errors import BadMessage

_LENGTH = struct.Struct("<I")
#: A request is a header and at most a few audio buffers.
MAX_FRAMES = 8


def pack(frames: Sequence[bytes | memoryview]) -> bytes:
    """Frames -> one binary message."""
    parts: list[bytes | memoryview] = []
    for frame in frames:
        parts.append(_LENGTH.pack(len(frame)))
        parts.append(frame)
    return b"".join(parts)


def unpack(message: bytes) -> list[memoryview]:
    """One binary message -> its frames; BadMessage if the lengths do not add up."""
    view = memoryview(message)
    frames: list[memoryview] = []
    offset = 0
    while offset < len(view):
        if len(frames) == MAX_FRAMES:
            raise BadMessage(f"a message holds at most {MAX_FRAMES} frames")
        if offset + _LENGTH.size > len(view):
            raise BadMessage("a frame length is cut off")
        (length,) = _LENGTH.unpack_from(view, offset)
        offset += _LENGTH.size
        if offset + length > len(view):
            raise BadMessage(f"a frame says {length} bytes, {len(view) - offset} are left")
        frames.append(view[offset:offset + length])
        offset += length
    if not frames:
        raise BadMessage("an empty message")
    return frames


__all__ = ["MAX_FRAMES", "pack", "unpack"]
