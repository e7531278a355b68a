"""Files riffd publishes: written whole under a temporary name, with the mode a new file gets.

Outputs are written under a temporary name made by `tempfile.mkstemp`, which creates it 0600
(private), and renamed into place when complete. A take that only its owner can read is no use
to a DAW or a sampler running as another user, and `open()` would have honoured the umask:
`publish_mode` gives the staged file the mode `open()` would have.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _process_umask() -> int:
    # Reading the umask means setting it; done once, at import, before the daemon starts threads
    # (a file made by another thread between the two calls would get the placeholder mask).
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


UMASK = _process_umask()


def publish_mode(target: int | str | os.PathLike[str]) -> None:
    """Give a staged file (an open descriptor or a path) the mode a plainly created file would have."""
    mode = 0o666 & ~UMASK
    if isinstance(target, int):
        os.fchmod(target, mode)
    else:
        os.chmod(target, mode)


@contextlib.contextmanager
def published(path: Path, *, prefix: str, suffix: str) -> Iterator[str]:
    """A temporary name beside `path` (`prefix`...`suffix`) for the block to write: when the block
    ends, the file gets the mode a plainly created file would (publish_mode) and takes `path`'s place
    whole, so readers never see half of it; when the block raises, it is removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, staging = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=path.parent)
    os.close(handle)
    try:
        yield staging
        publish_mode(staging)
        os.replace(staging, path)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise
