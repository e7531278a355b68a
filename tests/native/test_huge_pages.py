"""Packed weights live in memory asked for transparent huge pages (daemon/native/huge_pages.py).

On a machine whose kernel offers them (THP `always` or `madvise`), the mapping a packed tensor lies
in must be one the kernel may back with huge pages (`THPeligible: 1` in /proc/self/smaps: with THP
`madvise`, only mappings that asked say so), with the same values; elsewhere the tensor stays where
it was."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from daemon.native import NativeUnavailable, huge_pages, int8_matvec


def _mapping_flags(address: int) -> dict[str, str]:
    """/proc/self/smaps' fields of the mapping that holds `address`."""
    fields: dict[str, str] = {}
    inside = False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()[0]
        if "-" in head and ":" not in head:  # a mapping's first line: start-end perms ...
            start, end = (int(part, 16) for part in head.split("-"))
            inside = start <= address < end
            continue
        if inside and ":" in head:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


needs_thp = pytest.mark.skipif(not huge_pages.available() or not Path("/proc/self/smaps").exists(),
                               reason="no transparent huge pages on this machine")


def test_thp_mode_reads_the_bracketed_mode(tmp_path: Path) -> None:
    mode = tmp_path / "enabled"
    mode.write_text("always [madvise] never\n")
    assert huge_pages.thp_mode(mode) == "madvise"
    mode.write_text("[never]\n")
    assert huge_pages.thp_mode(mode) == "never"
    assert huge_pages.thp_mode(tmp_path / "missing") == ""
    size = tmp_path / "hpage_pmd_size"
    size.write_text("536870912\n")
    assert huge_pages.huge_page_bytes(size) == 512 << 20
    assert huge_pages.huge_page_bytes(tmp_path / "missing") == huge_pages.HUGE_PAGE_BYTES


@needs_thp
def test_a_copy_is_equal_and_lies_in_a_huge_page_mapping() -> None:
    generator = torch.Generator().manual_seed(3)
    tensors = [torch.randint(-127, 128, shape, dtype=torch.int8, generator=generator)
               for shape in ((96, 256, 32, 4), (5, 7), (3 << 20,))]  # the last one larger than a huge page
    tensors.append(torch.randn(64, 33, generator=generator))
    copies = [huge_pages.huge_copy(tensor) for tensor in tensors]
    for tensor, copy in zip(tensors, copies, strict=True):
        assert copy.dtype == tensor.dtype and copy.shape == tensor.shape and copy.is_contiguous()
        assert torch.equal(copy, tensor)
        assert copy.data_ptr() != tensor.data_ptr() and copy.data_ptr() % huge_pages.ALIGN_BYTES == 0
        assert _mapping_flags(copy.data_ptr()).get("THPeligible") == "1"
    big = huge_pages.huge_copy(torch.zeros(huge_pages.ARENA_BYTES, dtype=torch.uint8))  # an arena of its own
    assert big.data_ptr() % huge_pages.huge_page_bytes() == 0
    assert _mapping_flags(big.data_ptr()).get("THPeligible") == "1"


@needs_thp
def test_packed_weights_are_in_huge_page_mappings() -> None:
    codes = torch.randint(-127, 128, (256, 1024), dtype=torch.int8, generator=torch.Generator().manual_seed(4))
    try:
        packed = int8_matvec.pack(codes, torch.full((256,), 0.01))
    except NativeUnavailable as exc:
        pytest.skip(str(exc))
    assert _mapping_flags(packed.packed.data_ptr()).get("THPeligible") == "1"
    assert torch.equal(packed.codes(), codes)


def test_without_huge_pages_the_tensor_stays(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(huge_pages, "thp_mode", lambda path=huge_pages.THP_MODE_FILE: "never")
    tensor = torch.arange(10)
    assert huge_pages.huge_copy(tensor) is tensor


def _one(shape: tuple[int, ...], dtype: torch.dtype, zeroed: bool = True) -> torch.Tensor:
    return huge_pages.huge_empties([(shape, dtype)], zeroed)[0]


@pytest.fixture
def no_spares(monkeypatch: pytest.MonkeyPatch) -> list:
    """An empty list of spare mappings for this test alone."""
    spares: list = []
    monkeypatch.setattr(huge_pages, "_spare", spares)
    return spares


@needs_thp
def test_an_empty_buffer_is_zeros_in_a_huge_page_mapping_kept_for_the_next_window(no_spares: list) -> None:
    buffer = _one((48, 2, 16, 13, 64), torch.float32)
    assert buffer.shape == (48, 2, 16, 13, 64) and buffer.dtype == torch.float32 and buffer.is_contiguous()
    assert not buffer.any()
    assert buffer.data_ptr() % huge_pages.HUGE_PAGE_BYTES == 0
    assert _mapping_flags(buffer.data_ptr()).get("THPeligible") == "1"
    buffer.fill_(7.0)
    address, view = buffer.data_ptr(), buffer[3, 1]
    del buffer
    assert not no_spares  # a view holds the mapping
    del view
    assert len(no_spares) == 1 and huge_pages.spare_bytes() == no_spares[0].size  # kept, not unmapped
    again = _one((48, 2, 16, 13, 64), torch.float32, zeroed=False)
    assert again.data_ptr() == address and bool((again == 7.0).all())  # the same pages, as left
    del again
    zeroed = _one((1000,), torch.int8)  # the smallest spare with room, zeroed
    assert zeroed.data_ptr() == address and not zeroed.any() and not no_spares


@needs_thp
def test_spares_stop_at_spare_bytes(no_spares: list, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(huge_pages, "SPARE_BYTES", 8 << 20)
    first, second = _one((3 << 20,), torch.uint8), _one((3 << 20,), torch.uint8)
    kept, dropped = first.data_ptr(), second.data_ptr()
    del first
    del second
    assert len(no_spares) == 1  # 6 MiB each with the alignment's page: one fits under 8 MiB
    assert _one((3 << 20,), torch.uint8).data_ptr() == kept
    assert not _mapping_flags(dropped)  # the other was unmapped


@needs_thp
def test_reserve_faults_in_spares_that_windows_then_take(no_spares: list) -> None:
    huge_pages.reserve(5 << 20, 2)
    assert len(no_spares) == 2
    for arena in no_spares:
        address = torch.frombuffer(arena.mapping, dtype=torch.uint8, count=1, offset=arena.first).data_ptr()
        resident = _mapping_flags(address).get("AnonHugePages", "0 kB")
        assert int(resident.split()[0]) >= 5 << 10  # kB: faulted in as huge pages now
    huge_pages.reserve(5 << 20, 2)  # enough there already
    assert len(no_spares) == 2
    buffers = huge_pages.huge_empties([((2, 1 << 20), torch.uint8), ((1 << 18,), torch.float32)], zeroed=False)
    assert len(no_spares) == 1 and all(b.data_ptr() % huge_pages.ALIGN_BYTES == 0 for b in buffers)


def test_without_huge_pages_an_empty_buffer_is_ordinary_zeros(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(huge_pages, "thp_mode", lambda path=huge_pages.THP_MODE_FILE: "never")
    buffer = _one((3, 5), torch.int8)
    assert buffer.shape == (3, 5) and buffer.dtype == torch.int8 and not buffer.any()


@needs_thp
def test_empty_buffers_share_one_mapping_each_on_a_page_of_its_own(no_spares: list) -> None:
    specs = [((2, 3, 100, 32), torch.uint8), ((2, 3, 100), torch.float32), ((5,), torch.int8)]
    buffers = huge_pages.huge_empties(specs)
    assert [(tuple(b.shape), b.dtype) for b in buffers] == specs
    assert all(not b.any() and b.is_contiguous() and b.data_ptr() % huge_pages.ALIGN_BYTES == 0 for b in buffers)
    mappings = {_mapping_flags(b.data_ptr())["Size"] for b in buffers}
    assert len(mappings) == 1 and _mapping_flags(buffers[0].data_ptr()).get("THPeligible") == "1"
    buffers[0].fill_(255)  # no overlap
    assert not buffers[1].any() and not buffers[2].any()
