"""Housekeeping of the --out folder: chunk files of finished jobs expire; a killed write's
temporary files are removed at start.

Chunk files exist so OSC listeners can read each block as it comes; once a job has ended and
its listeners had `chunk_keep_s` to read them, they only fill the disk. Saved job files
(`JOB.wav` directly under --out) are the user's and are never touched.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Collection
from pathlib import Path

log = logging.getLogger(__name__)

CHUNK_PREFIX = "chunk-"


def sweep_chunks(out_dir: Path, keep_s: float, active_jobs: Collection[str],
                 clock: Callable[[], float] = time.time) -> int:
    """Delete chunk files older than `keep_s` in job folders not in `active_jobs`; return how many.

    Only `chunk-*.wav` files are removed, and a job folder only once empty; links are never
    followed (a link planted in --out cannot make us delete elsewhere).
    """
    removed = 0
    now = clock()
    try:
        entries = list(os.scandir(out_dir))
    except OSError:
        return 0
    for entry in entries:
        if entry.name in active_jobs or not entry.is_dir(follow_symlinks=False):
            continue
        left = 0
        try:
            files = list(os.scandir(entry.path))
        except OSError:
            continue
        for item in files:
            if not (item.name.startswith(CHUNK_PREFIX) and item.name.endswith(".wav")
                    and item.is_file(follow_symlinks=False)):
                left += 1
                continue
            try:
                if now - item.stat(follow_symlinks=False).st_mtime >= keep_s:
                    os.unlink(item.path)
                    removed += 1
                else:
                    left += 1
            except OSError:
                left += 1
        if left == 0:
            try:
                os.rmdir(entry.path)
            except OSError:
                pass
    if removed:
        log.info("removed %d expired chunk file(s) from %s", removed, out_dir)
    return removed


def remove_partials(out_dir: Path) -> int:
    """Delete `.NAME.*.part` files a killed daemon left mid-write (never under a final name)."""
    removed = 0
    for path in out_dir.rglob(".*.part"):
        if path.is_file() and not path.is_symlink():
            try:
                path.unlink()
                removed += 1
            except OSError:
                pass
    if removed:
        log.warning("removed %d incomplete file(s) left by an earlier run in %s", removed, out_dir)
    return removed


__all__ = ["remove_partials", "sweep_chunks"]
