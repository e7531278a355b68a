"""Memory for the bytes a decode step streams (packed weights), asked of the kernel in 2 MiB pages.

A step reads every packed weight once, 363 MB of int8 for musicgen-small, as long sequential
streams. From ordinary 4 KiB pages every 64 lines of a stream cost a TLB miss, and under a
hypervisor each miss walks two page tables (the guest's and the host's). Measured on the 2-core
AMD EPYC Zen 4 VM (AVX-512 VNNI, KVM), musicgen-small's 169 int8a8 products of one step with two
activation rows, same process, alternating: 12.7-13.1 ms from 4 KiB pages against 10.4-10.6 ms
(34-35 GB/s) from the same bytes in transparent huge pages. The bytes are the same, so are the
results.

Linux backs an anonymous mapping with huge pages where its transparent huge page mode is `always`,
or `madvise` (the common default) and the mapping asked with MADV_HUGEPAGE; a huge page covers an
aligned 2 MiB of the mapping (x86-64), so tensors are carved out of shared arenas of whole huge pages rather
than mapped one by one (a 1 MiB projection alone would get none). Where there is no such thing
(another OS, THP `never`), `huge_copy` returns the tensor it was given. Pages the kernel cannot find
a huge page for stay small: slower, never wrong.
"""

from __future__ import annotations

import logging
import math
import mmap
import threading
import weakref
from collections.abc import Sequence
from pathlib import Path

import numpy
import torch

log = logging.getLogger(__name__)

#: The huge page size on x86-64 and on ARM64 with 4 KiB pages; huge_page_bytes() reads the kernel's.
HUGE_PAGE_BYTES = 2 << 20
#: A fresh arena's size; a tensor larger than this gets an arena of its own.
ARENA_BYTES = 64 << 20
#: Each tensor starts on a page of its own (and so on a cache line).
ALIGN_BYTES = 4096
THP_MODE_FILE = Path("/sys/kernel/mm/transparent_hugepage/enabled")
THP_SIZE_FILE = Path("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size")


def thp_mode(path: Path = THP_MODE_FILE) -> str:
    """The kernel's transparent huge page mode (`always`, `madvise`, `never`), `""` where unknown."""
    try:
        text = path.read_text()
    except OSError:
        return ""
    start, end = text.find("["), text.find("]")
    return text[start + 1:end] if 0 <= start < end else ""


def huge_page_bytes(path: Path = THP_SIZE_FILE) -> int:
    """The kernel's transparent huge page size (HUGE_PAGE_BYTES where it does not say)."""
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return HUGE_PAGE_BYTES


def available() -> bool:
    """Whether huge_copy can ask for huge pages here: the kernel has them, and they are small enough
    for an arena to hold a few (ARM64 kernels with 64 KiB pages have 512 MiB ones)."""
    return hasattr(mmap, "MADV_HUGEPAGE") and thp_mode() in ("always", "madvise") \
        and huge_page_bytes() <= ARENA_BYTES // 4


class _Arena:
    """One anonymous mapping asked for huge pages, handed out front to back. Each tensor made from
    it holds the mapping (torch.frombuffer keeps its buffer alive), so it is unmapped once the
    last of them is gone."""

    def __init__(self, size: int) -> None:
        # One huge page more than asked: mmap aligns to 4 KiB pages only (newer kernels align large
        # anonymous mappings to 2 MiB, older ones do not), and the tensors start at the first 2 MiB
        # boundary inside.
        page = huge_page_bytes()
        self.size = -(-size // page) * page + page
        self.mapping = mmap.mmap(-1, self.size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        self.mapping.madvise(mmap.MADV_HUGEPAGE)
        address = torch.frombuffer(self.mapping, dtype=torch.uint8, count=1).data_ptr()
        self.used = self.first = -address % page

    @property
    def capacity(self) -> int:
        """Bytes from the first huge page boundary to the end."""
        return self.size - self.first

    def take(self, nbytes: int) -> torch.Tensor | None:
        start = -(-self.used // ALIGN_BYTES) * ALIGN_BYTES
        if start + nbytes > self.size:
            return None
        self.used = start + nbytes
        return torch.frombuffer(self.mapping, dtype=torch.uint8, count=nbytes, offset=start)


_lock = threading.RLock()  # a spare mapping comes back from a finalizer, which may run under it
_arena: _Arena | None = None


def _take(nbytes: int) -> torch.Tensor:
    global _arena
    with _lock:
        if nbytes > ARENA_BYTES // 2:  # its own arena; the shared one keeps its free tail
            taken = _Arena(nbytes).take(nbytes)
            assert taken is not None
            return taken
        taken = _arena.take(nbytes) if _arena is not None else None
        if taken is None:
            _arena = _Arena(ARENA_BYTES)
            taken = _arena.take(nbytes)
            assert taken is not None
        return taken


#: Window buffers' mappings kept for later windows once their tensors are gone, at most this many
#: bytes in all (two guided musicgen-small +kv4 windows, a long job's current and next, are 176 MB).
SPARE_BYTES = 512 << 20

_spare: list[_Arena] = []  # mappings of windows gone, their huge pages still faulted in


def _give_back(arena: _Arena) -> None:
    """A window's mapping whose tensors are all gone: kept for the next window (its huge pages stay
    faulted in), or left to be unmapped where the spares would pass SPARE_BYTES."""
    with _lock:
        if sum(a.size for a in _spare) + arena.size <= SPARE_BYTES:
            _spare.append(arena)


def _lend(nbytes: int) -> tuple[_Arena, bool]:
    """The smallest spare mapping with room for `nbytes` (True: it was used before), else a new one."""
    with _lock:
        fits = [a for a in _spare if a.capacity >= nbytes]
        if fits:
            arena = min(fits, key=lambda a: a.capacity)
            _spare.remove(arena)
            return arena, True
    return _Arena(nbytes), False


def spare_bytes() -> int:
    """Bytes of the mappings kept for later windows."""
    with _lock:
        return sum(a.size for a in _spare)


def _starts(specs: Sequence[tuple[tuple[int, ...], torch.dtype]]) -> tuple[list[int], int]:
    """Where huge_empties puts each of these (shape, dtype), each on a page of its own, and the room
    they take in all."""
    starts, offset = [], 0
    for shape, dtype in specs:
        offset = -(-offset // ALIGN_BYTES) * ALIGN_BYTES
        starts.append(offset)
        offset += math.prod(shape) * dtype.itemsize
    return starts, offset


def buffers_bytes(specs: Sequence[tuple[tuple[int, ...], torch.dtype]]) -> int:
    """The room huge_empties takes for these (shape, dtype): each on a page of its own."""
    return _starts(specs)[1]


def reserve(nbytes: int, count: int) -> None:
    """Make sure `count` spare mappings of at least `nbytes` wait for windows, their huge pages faulted
    in now (a write to each): at start-up, not when a job's first window (or a long job's next) is
    opened. Where free memory is fragmented the kernel compacts it for each new huge page first
    (THP defrag `madvise`), 230-320 ms for musicgen-small's 86 MB window on the 2-core Zen 4 KVM;
    a spare is ready at once."""
    page = huge_page_bytes()
    if nbytes <= 0 or not available() or count * (-(-nbytes // page) + 1) * page > SPARE_BYTES:
        return
    with _lock:
        ready = sum(1 for a in _spare if a.capacity >= nbytes)
    for _ in range(count - ready):
        try:
            arena = _Arena(nbytes)
        except (OSError, ValueError) as exc:
            log.debug("huge pages: no mapping to reserve (%s)", exc)
            return
        for offset in range(arena.first, arena.size, page):
            arena.mapping[offset] = 0
        _give_back(arena)


def huge_empties(specs: Sequence[tuple[tuple[int, ...], torch.dtype]], zeroed: bool = True) -> list[torch.Tensor]:
    """CPU tensors of these (shape, dtype) in one mapping asked for huge pages, each on a page of its
    own: a window's many buffers (a KV cache's 96 for musicgen-small) share whole huge pages instead
    of each rounding up to its own (a 192 KB scale tensor would take 2 MiB). Once all of them and
    their views are gone the mapping is kept for the next window (`reserve`; up to SPARE_BYTES),
    its huge pages faulted in already. `zeroed` False: what a window before left there (as
    torch.empty's) where a spare serves. Ordinary tensors where huge pages are not available."""
    starts, nbytes = _starts(specs)
    make = torch.zeros if zeroed else torch.empty
    if nbytes == 0 or not available():
        return [make(shape, dtype=dtype) for shape, dtype in specs]
    try:
        arena, used = _lend(nbytes)
    except (OSError, ValueError) as exc:
        log.debug("huge pages: no mapping (%s); an ordinary allocation instead", exc)
        return [make(shape, dtype=dtype) for shape, dtype in specs]
    # The finalizer hangs on a numpy array over the mapping: torch keeps it alive as long as any
    # tensor or view made from it (a Python 3.11 class cannot lend its buffer to torch itself).
    array = numpy.frombuffer(arena.mapping, dtype=numpy.uint8)
    weakref.finalize(array, _give_back, arena)
    raw = torch.from_numpy(array)[arena.first:arena.first + nbytes]
    if used and zeroed:
        raw.zero_()
    return [raw[start:start + math.prod(shape) * dtype.itemsize].view(dtype).view(shape)
            for (shape, dtype), start in zip(specs, starts, strict=True)]


def huge_copy(tensor: torch.Tensor) -> torch.Tensor:
    """A contiguous copy of CPU `tensor` in memory asked for huge pages (the same shape, dtype and
    values), or `tensor` itself where huge pages are not available or it is not on the CPU."""
    if tensor.device.type != "cpu" or tensor.numel() == 0 or not available():
        return tensor
    try:
        raw = _take(tensor.numel() * tensor.element_size())
    except (OSError, ValueError) as exc:  # no memory for a new mapping: the ordinary allocation serves
        log.debug("huge pages: no arena (%s); keeping the tensor where it is", exc)
        return tensor
    copy = raw.view(tensor.dtype).view(tensor.shape)
    copy.copy_(tensor)
    return copy
