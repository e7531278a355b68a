"""Top-level Jukebox codes on disk: what a sampled sketch leaves behind for a later upsample.

A `.npz` file (numpy, no pickles) holding `top` (int32 `[T]`, the top level's codes) and the
labels it was sampled with, so `jukebox_upsample` can name it (or its job id) and upsample the
exact codes rather than a re-encoding of their audio. A bare `.npy` array `[T]` or `[1, T]` of
top-level codes is read too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from daemon.file_mode import published
from protocol.errors import BadAudio, InvalidArgument

#: Labels stored beside the codes, restored when an upsample request leaves them empty.
LABEL_KEYS = ("artist", "genres", "lyrics")


@dataclass(frozen=True)
class TopCodes:
    """Top-level codes `[T]` and the labels (possibly empty) they were sampled with."""

    codes: np.ndarray
    artist: str = ""
    genres: str = ""
    lyrics: str = ""
    model: str = ""


def write_codes(path: Path, top: TopCodes) -> None:
    """Write `top` to `path` whole (temporary file, then rename), so readers never see half."""
    with published(path, prefix=".codes-", suffix=".npz") as staging, open(staging, "wb") as handle:
        np.savez(handle, top=np.asarray(top.codes, dtype=np.int32).reshape(-1),
                 **{key: np.array(getattr(top, key)) for key in (*LABEL_KEYS, "model")})


def read_codes(path: Path) -> TopCodes:
    """The top-level codes of a `.npz` written by `write_codes` or a `.npy` array; BadAudio if unusable."""
    try:
        if path.suffix == ".npy":
            codes = np.load(path, allow_pickle=False)
            labels: dict[str, str] = {}
        else:
            with np.load(path, allow_pickle=False) as data:
                if "top" not in data:
                    raise BadAudio(f"{path} has no 'top' array of top-level codes")
                codes = data["top"]
                labels = {key: str(data[key]) for key in (*LABEL_KEYS, "model") if key in data}
    except (OSError, ValueError) as exc:
        raise BadAudio(f"cannot read codes from {path}: {exc}") from None
    if codes.ndim == 2 and codes.shape[0] == 1:
        codes = codes[0]
    if codes.ndim != 1 or codes.size == 0 or not np.issubdtype(codes.dtype, np.integer):
        raise InvalidArgument(f"{path}: top-level codes must be a non-empty integer array [T], "
                              f"got {codes.dtype} {tuple(codes.shape)}")
    return TopCodes(codes.astype(np.int64), **labels)
