"""Loaded MusicGen presets, one per session, on the CPU."""

from __future__ import annotations

import pytest

from daemon.models.registry import load_backend


@pytest.fixture(scope="session")
def load_preset(riffd_cache):
    loaded = {}

    def load(name: str):
        if name not in loaded:
            loaded[name] = load_backend(name, device="cpu", cache_dir=riffd_cache)
        return loaded[name]

    return load


@pytest.fixture(scope="session")
def musicgen(load_preset):
    return load_preset("debug/musicgen")
