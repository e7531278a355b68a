"""A window's self-attention slots, read by every step (77 MB a step of one guided musicgen-small stream
at position 1400, +kv4), lie in memory asked for transparent huge pages where the kernel offers them
(daemon/native/huge_pages.py), kept for the next window and reserved at warm-up."""

from __future__ import annotations

import pytest
import torch

from daemon.models.musicgen.engine import MusicgenEngine
from daemon.models.musicgen.handoff import cache_positions
from daemon.models.musicgen.kv_cache import PACKED4, KVCache
from daemon.models.musicgen.longform import Window
from daemon.models.musicgen.options import EngineOptions
from daemon.native import huge_pages
from tests.native.test_huge_pages import _mapping_flags, needs_thp


@needs_thp
@pytest.mark.parametrize("dtype", [PACKED4, torch.int8, torch.float32])
def test_a_cpu_windows_slots_and_scales_are_zeros_in_one_huge_page_mapping(dtype, monkeypatch):
    monkeypatch.setattr(huge_pages, "_spare", [])
    cache = KVCache.allocate(layers=3, batch=2, heads=4, head_dim=16, max_positions=40, dtype=dtype,
                             device=torch.device("cpu"), zeroed=False)
    tensors = cache.keys + cache.values + cache.key_scales + cache.value_scales
    assert len(tensors) == (12 if dtype != torch.float32 else 6)
    assert all(not t.any() and t.is_contiguous() for t in tensors)
    assert cache.keys[0].shape == ((2, 4, 40 + 40, 8) if dtype == PACKED4 else (2, 4, 40, 16))
    flags = [_mapping_flags(t.data_ptr()) for t in tensors]
    assert all(f.get("THPeligible") == "1" for f in flags) and len({f["Size"] for f in flags}) == 1
    cache.keys[0].fill_(1)  # each tensor its own memory
    assert not any(t.any() for t in tensors[1:])
    address = cache.keys[0].data_ptr()
    cache.free()
    del tensors
    again = KVCache.allocate(layers=3, batch=2, heads=4, head_dim=16, max_positions=40, dtype=dtype,
                             device=torch.device("cpu"), zeroed=True)
    assert again.keys[0].data_ptr() == address and not again.keys[0].any()  # the window before's pages, zeroed


@needs_thp
def test_the_warm_up_reserves_two_whole_windows(load_preset, monkeypatch):
    spares: list = []
    monkeypatch.setattr(huge_pages, "_spare", spares)
    bundle = load_preset("debug/musicgen").bundle
    engine = MusicgenEngine(bundle, EngineOptions(weights="int8a8", warmup=False))
    engine.warm_up()
    w = engine.decoder.weights
    full = Window(index=0, prompt_frames=0, new_frames=bundle.window_frames, start_frame=0)
    specs = KVCache.buffer_specs(layers=len(w.layers), batch=2, heads=w.heads, head_dim=w.head_dim,
                                 max_positions=cache_positions(full, bundle), dtype=engine.decoder.cache_dtype)
    assert sum(a.capacity >= huge_pages.buffers_bytes(specs) for a in spares) >= 2
