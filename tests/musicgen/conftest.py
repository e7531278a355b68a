"""Loaded MusicGen presets, one per session, on the CPU."""

from __future__ import annotations

import pytest

from daemon.models.musicgen import handoff
from daemon.models.registry import load_backend


@pytest.fixture(autouse=True)
def _one_riding_column_a_step(monkeypatch):
    """A long job's next window rides one context column a step unless a test says otherwise: how many
    is the kernels' choice (`handoff.ride_columns`: more where the AMX tile unit takes the products), and
    tests that count a step's windows would otherwise depend on the CPU they run on."""
    monkeypatch.setattr(handoff, "RIDE_COLUMNS", 1)


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
