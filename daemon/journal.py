"""The job journal on disk: what a restarted daemon needs to finish the work it had accepted.

One folder, three files per job, each written whole (temporary file, fsync, rename, fsync of
the folder), so a kill at any moment leaves either the old or the new version, never half:

  JOB.job         the request as it came (wire frames), the model, where its events went, when it
                  was accepted; a checksum at the end, so a truncated or damaged entry is found
  JOB.state.json  running since when, with which seed
  JOB.ckpt.npz    a backend's checkpoint (a Jukebox render's codes and random generator state) and
                  how far the job had got (`progress`: done, total); one file, so one fsync a window

An entry that cannot be read is reported, moved to `corrupt/` (kept for a person to look at) and
skipped; it never stops the daemon. Torch-free: backends hand checkpoints over as numpy arrays.
"""

from __future__ import annotations

import io
import json
import logging
import os
import struct
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from protocol.errors import InvalidArgument
from protocol.messages import check_job_id
from protocol.params import SEED_LIMIT

log = logging.getLogger(__name__)

MAGIC = b"riffd-journal 1\n"
JOB_SUFFIX = ".job"
STATE_SUFFIX = ".state.json"
CHECKPOINT_SUFFIX = ".ckpt.npz"
#: A request's frames are at most a header and its inline audio; anything claiming more is damage.
MAX_ENTRY_BYTES = 1 << 31
#: What record_accepted writes in every entry's metadata (besides the job id); a missing one is damage.
META_KEYS = ("model", "save", "reply", "accepted_ns")


class JournalError(ValueError):
    """An entry that cannot be used (truncated, damaged, another format, a field of the wrong type)."""


@dataclass(frozen=True)
class JournalEntry:
    """One accepted job as the journal holds it."""

    job_id: str
    accepted_ns: int  # wall clock at acceptance: resumed jobs keep their order
    model: str
    save: bool
    reply: dict[str, Any] | None  # where its events went (a transport's address), if it can be reached again
    frames: tuple[bytes, ...]  # the request, as protocol.wire encodes it
    running: bool = False  # it had started when the daemon stopped
    seed: int | None = None  # the seed it started with (a resumed render must draw the same)
    done: int = 0  # progress saved with its last checkpoint, in the backend's units
    total: int = 0


def write_atomic(path: Path, data: bytes, *, sync: bool = True) -> None:
    """`data` at `path` whole or not at all. With `sync`, on disk (not only in the page cache) when
    this returns; without, a killed process still leaves it whole, a power cut may lose it."""
    fd, staging = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if sync:
                os.fsync(handle.fileno())
        os.replace(staging, path)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise
    if sync:
        _sync_folder(path.parent)


def _sync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable (the folder's entry list is what a crash could lose)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot sync a folder; the rename is still atomic
    finally:
        os.close(fd)


def encode_entry(meta: dict[str, Any], frames: tuple[bytes, ...] | list[bytes]) -> bytes:
    """MAGIC, meta JSON and frames, each length-prefixed (8 bytes, big-endian), then a CRC-32."""
    parts = [MAGIC]
    for blob in (json.dumps(meta, sort_keys=True).encode(), *frames):
        parts += [struct.pack(">Q", len(blob)), blob]
    body = b"".join(parts)
    return body + struct.pack(">I", zlib.crc32(body))


def decode_entry(data: bytes) -> tuple[dict[str, Any], tuple[bytes, ...]]:
    """The meta and frames of an entry; JournalError if it is not a whole, intact entry."""
    if not data.startswith(MAGIC):
        raise JournalError("not a riffd journal entry (or from another version)")
    if len(data) < len(MAGIC) + 4:
        raise JournalError("truncated")
    body, (crc,) = data[:-4], struct.unpack(">I", data[-4:])
    if zlib.crc32(body) != crc:
        raise JournalError("checksum mismatch: truncated or damaged")
    blobs, at = [], len(MAGIC)
    while at < len(body):
        if at + 8 > len(body):
            raise JournalError("truncated frame length")
        (size,) = struct.unpack(">Q", body[at:at + 8])
        if at + 8 + size > len(body):
            raise JournalError("truncated frame")
        blobs.append(body[at + 8:at + 8 + size])
        at += 8 + size
    if not blobs:
        raise JournalError("no metadata")
    try:
        meta = json.loads(blobs[0])
    except (ValueError, RecursionError) as exc:
        raise JournalError(f"metadata is not JSON: {exc}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("job"), str) or not isinstance(meta.get("model"), str):
        raise JournalError("metadata lacks the job id or model")
    return meta, tuple(blobs[1:])


class JobCheckpoint:
    """A backend's checkpoint of one job: named arrays, replaced whole at every save."""

    def __init__(self, journal: "Journal", job_id: str) -> None:
        self._journal = journal
        self.job_id = job_id
        self.path = journal.folder / f"{job_id}{CHECKPOINT_SUFFIX}"

    def load(self) -> dict[str, np.ndarray] | None:
        """The last checkpoint saved (its arrays, and `progress`: [done, total]), or None (none yet, or
        unreadable: reported, and the job starts over)."""
        if not self.path.is_file():
            return None
        try:
            with np.load(self.path, allow_pickle=False) as data:
                return {name: data[name] for name in data.files}
        except (OSError, ValueError, EOFError, zlib.error) as exc:
            log.warning("journal: checkpoint %s is unreadable (%s); job %s starts over", self.path.name, exc,
                        self.job_id)
            return None

    def save(self, arrays: dict[str, np.ndarray], done: int, total: int) -> None:
        """Replace the checkpoint whole. A failed write (a full disk) is logged and the job goes on:
        only its resumability suffers, and the last checkpoint written stands."""
        buffer = io.BytesIO()
        savez: Any = np.savez  # numpy's stubs take the keyword arrays for its own options
        savez(buffer, **arrays, progress=np.array([done, total], dtype=np.int64))
        try:
            write_atomic(self.path, buffer.getvalue())
        except OSError as exc:
            log.error("journal: checkpoint of job %s not saved: %s", self.job_id, exc)


class Journal:
    """The journal folder of one daemon (under --out, or --state-dir)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob(".*.tmp"):  # a write a kill interrupted: the old version stands
            stale.unlink(missing_ok=True)
        # OSError now if the folder exists but cannot be written (a read-only mount), as when it cannot
        # be made: a daemon that started anyway would run every saved job unjournaled.
        fd, probe = tempfile.mkstemp(prefix=".probe.", suffix=".tmp", dir=folder)
        os.close(fd)
        os.unlink(probe)
        self._states: dict[str, dict[str, Any]] = {}

    def _path(self, job_id: str, suffix: str) -> Path:
        return self.folder / f"{job_id}{suffix}"

    def record_accepted(self, job_id: str, *, model: str, save: bool, reply: dict[str, Any] | None,
                        frames: list[bytes] | tuple[bytes, ...], accepted_ns: int | None = None,
                        fresh: bool = True) -> int:
        """Journal a job as it is accepted; return its accepted_ns. `fresh`: a new job (any state or
        checkpoint an earlier job of the same id left is dropped); else a resumed one keeps them."""
        if fresh:
            for suffix in (STATE_SUFFIX, CHECKPOINT_SUFFIX):
                self._path(job_id, suffix).unlink(missing_ok=True)
            self._states.pop(job_id, None)
        accepted_ns = accepted_ns or time.time_ns()
        meta = dict(job=job_id, model=model, save=save, reply=reply, accepted_ns=accepted_ns)
        write_atomic(self._path(job_id, JOB_SUFFIX), encode_entry(meta, frames))
        return accepted_ns

    def record_started(self, job_id: str, seed: int) -> None:
        state = self._states.setdefault(job_id, {})
        state.update(state="running", seed=seed, started_at=time.time())
        self._write_state(job_id)

    def _write_state(self, job_id: str) -> None:
        # Not synced: it is written as the job starts, where a live take's first sound waits (an fsync
        # here cost ~5 ms on the test machine). A process killed any way leaves it whole; after a power
        # cut the job's checkpoint (synced, with its seed) still says it ran and with which seed.
        write_atomic(self._path(job_id, STATE_SUFFIX), json.dumps(self._states[job_id]).encode(), sync=False)

    def checkpoint(self, job_id: str) -> JobCheckpoint:
        return JobCheckpoint(self, job_id)

    def forget(self, job_id: str) -> None:
        """The job ended: its entry goes (first, so a kill meanwhile leaves nothing to resume)."""
        for suffix in (JOB_SUFFIX, STATE_SUFFIX, CHECKPOINT_SUFFIX):
            try:
                self._path(job_id, suffix).unlink(missing_ok=True)
            except OSError as exc:
                log.error("journal: cannot remove %s: %s", self._path(job_id, suffix), exc)
        self._states.pop(job_id, None)

    def read(self) -> list[JournalEntry]:
        """Every intact entry, those that were running first, then in the order they were accepted.

        A damaged entry (unreadable, or any field of the wrong type) is reported (log), moved to
        `corrupt/` and skipped; a damaged or lost state file is reported and the job's checkpoint
        (if any) tells its seed and progress, else it starts over; leftovers of ended jobs are removed.
        """
        entries = []
        for path in sorted(self.folder.glob(f"*{JOB_SUFFIX}")):
            try:
                entries.append(self._read_entry(path))
            except JournalError as exc:
                self.set_aside(path.name[: -len(JOB_SUFFIX)], str(exc))
            except (OSError, ValueError, TypeError, KeyError, RecursionError) as exc:
                # Damage _read_entry did not foresee (deeply nested JSON, a bug in reading it) still
                # costs this one entry, never the daemon's start.
                self.set_aside(path.name[: -len(JOB_SUFFIX)], f"{type(exc).__name__}: {exc}")
        known = {entry.job_id for entry in entries}
        for suffix in (STATE_SUFFIX, CHECKPOINT_SUFFIX):
            for orphan in self.folder.glob(f"*{suffix}"):
                if orphan.name[: -len(suffix)] not in known:
                    orphan.unlink(missing_ok=True)  # its job ended (or its entry was set aside)
        entries.sort(key=lambda entry: (not entry.running, entry.accepted_ns, entry.job_id))
        return entries

    def _read_entry(self, path: Path) -> JournalEntry:
        """One entry with its state and progress; JournalError if it cannot be used."""
        if path.stat().st_size > MAX_ENTRY_BYTES:
            raise JournalError(f"{path.stat().st_size} bytes, more than any request")
        meta, frames = decode_entry(path.read_bytes())
        job_id = path.name[: -len(JOB_SUFFIX)]
        model, save, reply, accepted_ns = _checked_meta(meta, job_id)
        state = self._read_state(job_id)
        done, total, checkpoint_seed = self._progress(job_id)
        seed = _seed_or_none(state.get("seed"))
        if seed is None and state.get("seed") is not None:
            log.warning("journal: state of job %s names seed %r, not a seed; its checkpoint, if any, says which",
                        job_id, state.get("seed"))
        if seed is None and checkpoint_seed is not None:
            state = {**state, "state": "running", "seed": checkpoint_seed}  # its state file was lost
            seed = checkpoint_seed
        self._states[job_id] = state
        return JournalEntry(job_id=job_id, accepted_ns=accepted_ns, model=model, save=save, reply=reply, frames=frames,
                            running=state.get("state") == "running", seed=seed, done=done, total=total)

    def _progress(self, job_id: str) -> tuple[int, int, int | None]:
        """(done, total, seed) saved with the job's checkpoint; (0, 0, None) without a usable one."""
        path = self._path(job_id, CHECKPOINT_SUFFIX)
        if not path.is_file():
            return 0, 0, None
        try:
            with np.load(path, allow_pickle=False) as data:
                done, total = (int(value) for value in data["progress"])
                seed = _seed_or_none(int(data["seed"])) if "seed" in data.files else None
            return done, total, seed
        except (OSError, ValueError, KeyError, TypeError, EOFError, zlib.error):
            return 0, 0, None  # reported when the backend loads it

    def _read_state(self, job_id: str) -> dict[str, Any]:
        path = self._path(job_id, STATE_SUFFIX)
        if not path.is_file():
            return {}
        try:
            state = json.loads(path.read_bytes())
            if not isinstance(state, dict):
                raise ValueError("not an object")
            return state
        except (OSError, ValueError, RecursionError) as exc:
            log.warning("journal: state of job %s is unreadable (%s); its checkpoint, if any, says how far it got",
                        job_id, exc)
            path.unlink(missing_ok=True)
            return {}

    def set_aside(self, job_id: str, reason: str) -> None:
        """Report an unusable entry and move it to `corrupt/` (for a person to look at); its state
        and checkpoint go. The daemon goes on without it."""
        path = self._path(job_id, JOB_SUFFIX)
        corrupt = self.folder / "corrupt"
        log.error("journal: entry %s is unusable (%s); skipped, moved to %s", path.name, reason, corrupt)
        try:
            corrupt.mkdir(exist_ok=True)
            os.replace(path, corrupt / path.name)
        except OSError as exc:
            log.error("journal: cannot move %s aside: %s", path, exc)
        for suffix in (STATE_SUFFIX, CHECKPOINT_SUFFIX):
            self._path(job_id, suffix).unlink(missing_ok=True)
        self._states.pop(job_id, None)


def _checked_meta(meta: dict[str, Any], file_job_id: str) -> tuple[str, bool, dict[str, Any] | None, int]:
    """An entry's model, save, reply and accepted_ns, each of the type record_accepted wrote, or
    JournalError (a checksum proves the bytes are whole, not that whoever wrote them wrote sense)."""
    job_id = meta.get("job")
    if job_id != file_job_id:
        raise JournalError(f"names job {job_id!r}, not the one of its file name")
    try:
        check_job_id(file_job_id)
    except InvalidArgument as exc:
        raise JournalError(exc.message) from None
    missing = [name for name in META_KEYS if name not in meta]
    if missing:
        raise JournalError(f"metadata lacks {', '.join(missing)}")
    model, save, reply, accepted_ns = (meta[name] for name in META_KEYS)
    if not isinstance(model, str) or not model:
        raise JournalError(f"model is {model!r}, not a model id")
    if not isinstance(save, bool):
        raise JournalError(f"save is {save!r}, not true or false")
    if reply is not None and not isinstance(reply, dict):
        raise JournalError(f"reply is {reply!r}, not an address")
    accepted = _int_or_none(accepted_ns)
    if accepted is None or accepted < 0:
        raise JournalError(f"accepted_ns is {accepted_ns!r}, not a time in ns")
    return model, save, reply, accepted


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _seed_or_none(value: object) -> int | None:
    """A seed a request could have given (protocol.params: [0, 2^63)); None for anything else."""
    seed = _int_or_none(value)
    return seed if seed is not None and 0 <= seed < SEED_LIMIT else None


__all__ = ["JobCheckpoint", "Journal", "JournalEntry", "JournalError", "write_atomic"]
