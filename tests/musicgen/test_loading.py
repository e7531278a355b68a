"""Models load the way users have them: presets built once, save_pretrained folders, hub ids."""

from __future__ import annotations

import json

import pytest
import torch

from daemon.models import hub
from daemon.models.musicgen.presets import ensure_preset
from daemon.models.registry import load_backend, resolve_folder
from protocol.errors import ModelUnavailable, UnknownModel
from protocol.params import GenerationParams


def test_preset_is_deterministic_and_reloads_as_a_folder(riffd_cache, tmp_path, musicgen):
    folder = ensure_preset("debug/musicgen", riffd_cache)
    assert {"config.json", "model.safetensors", "generation_config.json", "tokenizer_config.json"} <= {
        p.name for p in folder.iterdir()}
    # Built again elsewhere from the same seed: the same weights.
    again = ensure_preset("debug/musicgen", tmp_path)
    from safetensors.torch import load_file

    a, b = load_file(folder / "model.safetensors"), load_file(again / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # EnCodec codebooks are filled, so different codes decode to different sounds.
    codebook = [v for k, v in a.items() if k.endswith("codebook.embed")][0]
    assert codebook.abs().sum() > 0
    # The folder, passed as a path the way users pass their own, loads and generates the same.
    local = load_backend(str(folder), device="cpu")
    params = GenerationParams(duration_s=0.2, greedy=True)
    assert torch.equal(local.generate(["x"], params).codes, musicgen.generate(["x"], params).codes)


def test_real_checkpoint_layout_is_read(riffd_cache):
    config = json.loads((ensure_preset("debug/musicgen-melody", riffd_cache) / "config.json").read_text())
    assert config["model_type"] == "musicgen_melody"
    assert resolve_folder("debug/musicgen-melody", cache_dir=riffd_cache).is_dir()


def test_hub_ids_respect_offline_mode(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ModelUnavailable, match="riffd pull facebook/musicgen-medium"):
        hub.resolve_hub("facebook/musicgen-medium", ["*.json"])


def test_a_cached_hub_snapshot_loads_offline(riffd_cache, tmp_path, monkeypatch):
    """A hub id resolves from the local cache, laid out as huggingface_hub lays it out."""
    from huggingface_hub import constants

    source = ensure_preset("debug/musicgen", riffd_cache)
    repo = tmp_path / "models--acme--tiny-musicgen"
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    for f in source.iterdir():
        (snapshot / f.name).symlink_to(f)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    model = load_backend("acme/tiny-musicgen", device="cpu")
    assert model.sample_rate == 32000 and model.model_id == "acme/tiny-musicgen"


@pytest.mark.parametrize("model_id", ["", "debug/nothing", "no spaces allowed/x", "/definitely/not/here"])
def test_unknown_ids(model_id, riffd_cache):
    with pytest.raises(UnknownModel):
        resolve_folder(model_id, cache_dir=riffd_cache)
