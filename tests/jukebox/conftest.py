"""Shared fixtures: the reference fixture produced by transformers 4.40.2 (tests/fixtures/jukebox-tiny)."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from daemon.models.jukebox import JukeboxModel

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "jukebox-tiny"


@pytest.fixture(scope="session")
def fixture_dir() -> Path:
    return FIXTURE


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny tensors: intra-op threads only add overhead on the shared 2-core machines."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def model() -> JukeboxModel:
    return JukeboxModel.from_pretrained(FIXTURE)


@pytest.fixture(scope="session")
def expected() -> dict[str, torch.Tensor]:
    return load_file(str(FIXTURE / "expected.safetensors"))


@pytest.fixture(scope="session")
def meta() -> dict:
    return json.loads((FIXTURE / "meta.json").read_text())


@pytest.fixture(scope="session")
def labels(expected) -> list[torch.Tensor]:
    return [expected[f"labels_{i}"] for i in range(3)]
