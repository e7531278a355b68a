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
from collections.abc import Sequence
from pathlib import Path

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
        self.used = -address % page

    def take(self, nbytes: int) -> torch.Tensor | None:
        start = -(-self.used // ALIGN_BYTES) * ALIGN_BYTES
        if start + nbytes > self.size:
            return None
        self.used = start + nbytes
        return torch.frombuffer(self.mapping, dtype=torch.uint8, count=nbytes, offset=start)


_lock = threading.Lock()
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


def huge_empty(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """A CPU tensor of `shape` and `dtype` in a mapping of its own asked for huge pages, zero-filled (a
    fresh mapping is) and unmapped once the tensor and its views are gone: for a window's buffers,
    which come and go (the shared arenas live as long as any weight in them); `torch.zeros` where
    huge pages are not available."""
    return huge_empties([(shape, dtype)])[0]


def huge_empties(specs: Sequence[tuple[tuple[int, ...], torch.dtype]]) -> list[torch.Tensor]:
    """Zero-filled CPU tensors of these (shape, dtype) in one mapping asked for huge pages, each on a
    page of its own, unmapped once all of them and their views are gone: a window's many buffers
    (a KV cache's 96 for musicgen-small) share whole huge pages instead of each rounding up to its own
    (a 192 KB scale tensor would take 2 MiB). `torch.zeros` each where huge pages are not available."""
    sizes = [math.prod(shape) * dtype.itemsize for shape, dtype in specs]
    starts, offset = [], 0
    for size in sizes:
        offset = -(-offset // ALIGN_BYTES) * ALIGN_BYTES
        starts.append(offset)
        offset += size
    if offset == 0 or not available():
        return [torch.zeros(shape, dtype=dtype) for shape, dtype in specs]
    try:
        raw = _Arena(offset).take(offset)
    except (OSError, ValueError) as exc:
        log.debug("huge pages: no mapping (%s); an ordinary allocation instead", exc)
        return [torch.zeros(shape, dtype=dtype) for shape, dtype in specs]
    assert raw is not None
    return [raw[start:start + size].view(dtype).view(shape)
            for (shape, dtype), start, size in zip(specs, starts, sizes, strict=True)]


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
