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


@pytest.fixture(scope="session")
def model() -> JukeboxModel:
    torch.set_num_threads(1)  # tiny tensors: threads only add overhead on the shared CI cores
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
