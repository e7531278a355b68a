import json
import pickle
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from daemon.models.jukebox import JukeboxModel
from daemon.models.jukebox.config import JukeboxConfig, layer_attention
from daemon.models.jukebox.loader import CheckpointMismatch, CheckpointNotFound


def test_every_checkpoint_key_is_used(model, fixture_dir):
    state = load_file(str(fixture_dir / "model.safetensors"))
    assert len(state) == 713
    loaded = model.state_dict()
    assert set(loaded) == set(state)
    for key, value in state.items():
        assert torch.equal(loaded[key], value), key


def test_output_head_is_tied_to_embedding(model):
    for prior in model.priors:
        assert prior.prior.fc_proj_out.weight is prior.prior.embed_tokens.weight


def _copy_with(fixture_dir, tmp_path, change):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    shutil.copy(fixture_dir / "config.json", folder)
    state = load_file(str(fixture_dir / "model.safetensors"))
    change(state)
    save_file(state, str(folder / "model.safetensors"))
    return folder


def test_missing_key_is_an_error(fixture_dir, tmp_path):
    folder = _copy_with(fixture_dir, tmp_path, lambda s: s.pop("priors.1.prior.pos_emb.pos_emb"))
    with pytest.raises(CheckpointMismatch, match="1 missing"):
        JukeboxModel.from_pretrained(folder)


def test_unexpected_key_is_an_error(fixture_dir, tmp_path):
    folder = _copy_with(fixture_dir, tmp_path, lambda s: s.update({"priors.0.extra": torch.zeros(1)}))
    with pytest.raises(CheckpointMismatch, match="1 unexpected"):
        JukeboxModel.from_pretrained(folder)


def test_wrong_shape_is_an_error(fixture_dir, tmp_path):
    folder = _copy_with(fixture_dir, tmp_path, lambda s: s.update({"vqvae.decoders.0.out.bias": torch.zeros(2)}))
    with pytest.raises(CheckpointMismatch, match="out.bias"):
        JukeboxModel.from_pretrained(folder)


def test_tied_head_may_be_absent(fixture_dir, tmp_path, model):
    folder = _copy_with(fixture_dir, tmp_path, lambda s: s.pop("priors.0.prior.fc_proj_out.weight"))
    loaded = JukeboxModel.from_pretrained(folder)
    assert torch.equal(loaded.priors[0].prior.fc_proj_out.weight, model.priors[0].prior.fc_proj_out.weight)


def test_sharded_pytorch_bin(fixture_dir, tmp_path, model):
    folder = tmp_path / "sharded"
    folder.mkdir()
    shutil.copy(fixture_dir / "config.json", folder)
    state = load_file(str(fixture_dir / "model.safetensors"))
    keys = sorted(state)
    shards = {"pytorch_model-00001-of-00002.bin": keys[::2], "pytorch_model-00002-of-00002.bin": keys[1::2]}
    weight_map = {}
    for name, shard_keys in shards.items():
        torch.save({k: state[k] for k in shard_keys}, folder / name)
        weight_map.update({k: name for k in shard_keys})
    (folder / "pytorch_model.bin.index.json").write_text(json.dumps({"weight_map": weight_map}))
    loaded = JukeboxModel.from_pretrained(folder)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


class _NotATensor:
    pass


def test_pickled_code_is_refused(fixture_dir, tmp_path):
    folder = tmp_path / "evil"
    folder.mkdir()
    shutil.copy(fixture_dir / "config.json", folder)
    torch.save({"x": _NotATensor()}, folder / "pytorch_model.bin")
    with pytest.raises(pickle.UnpicklingError):
        JukeboxModel.from_pretrained(folder)


def test_hub_id_from_cache_offline(fixture_dir, tmp_path, monkeypatch, model):
    repo = tmp_path / "models--acme--tiny-jukebox"
    snapshot = repo / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    for name in ("config.json", "model.safetensors"):
        shutil.copy(fixture_dir / name, snapshot)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    loaded = JukeboxModel.from_pretrained("acme/tiny-jukebox", cache_dir=tmp_path)
    assert torch.equal(loaded.vqvae.bottleneck.level_blocks[0].codebook, model.vqvae.bottleneck.level_blocks[0].codebook)


def test_hub_id_offline_not_cached_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointNotFound) as error:
        JukeboxModel.from_pretrained("openai/jukebox-1b-lyrics", cache_dir=tmp_path)
    assert "openai/jukebox-1b-lyrics" in str(error.value)
    assert "riffd pull openai/jukebox-1b-lyrics" in str(error.value)


def test_not_a_folder_nor_a_hub_id(tmp_path):
    with pytest.raises(CheckpointNotFound):
        JukeboxModel.from_pretrained(tmp_path / "nothing-here")
    with pytest.raises(CheckpointNotFound, match="config.json"):
        JukeboxModel.from_pretrained(tmp_path)


def test_config_defaults_and_shared_keys(fixture_dir):
    raw = json.loads((fixture_dir / "config.json").read_text())
    config = JukeboxConfig.from_dict(raw)
    # absent from the file's vqvae_config, so transformers' defaults apply
    assert config.vqvae.multipliers == (2, 1, 1)
    assert config.vqvae.hop_lengths == (8, 32, 128)
    assert [config.raw_to_tokens(i) for i in range(3)] == [128, 32, 8]
    assert config.priors[0].lyric_prefix_len == 32  # 16 lyric tokens rounded past a 16-block boundary
    # the top-level copies override the priors' own
    override = JukeboxConfig.from_dict(raw, max_nb_genres=3, min_duration=17.84)
    assert all(p.max_nb_genres == 3 and p.min_duration == 17.84 for p in override.priors)


def test_config_with_prior_n_keys_equals_list_form(fixture_dir):
    raw = json.loads((fixture_dir / "config.json").read_text())
    per_key = {k: v for k, v in raw.items() if k != "prior_config_list"}
    per_key.update({f"prior_{i}": p for i, p in enumerate(raw["prior_config_list"])})
    assert JukeboxConfig.from_dict(per_key) == JukeboxConfig.from_dict(raw)


def test_bad_configs_are_errors(fixture_dir):
    raw = json.loads((fixture_dir / "config.json").read_text())
    with pytest.raises(ValueError, match="not a Jukebox"):
        JukeboxConfig.from_dict({**raw, "model_type": "musicgen"})
    priors = [dict(p) for p in raw["prior_config_list"]]
    priors[1]["attention_pattern"] = "sparse_magic"
    with pytest.raises(ValueError, match="attention_pattern"):
        JukeboxConfig.from_dict({**raw, "prior_config_list": priors})


def test_attention_patterns_of_the_real_checkpoints():
    top_1b = [layer_attention("enc_dec_with_lyrics", i) for i in range(72)]
    assert top_1b[15] == top_1b[31] == "prime_attn" and top_1b[47] == "dense_attn"
    assert top_1b[:3] == ["block_attn", "transpose_block_attn", "prev_block_attn"]
    top_5b = [layer_attention("large_separated_enc_dec_w_lyrics", i) for i in range(79)]
    assert [i for i, kind in enumerate(top_5b) if kind == "cross_attention"] == [18, 28, 38, 48, 58, 68, 78]


def test_large_checkpoint_path_builds_on_meta_device(fixture_dir, model, monkeypatch):
    import daemon.models.jukebox.model as model_module

    monkeypatch.setattr(model_module, "_META_INIT_BYTES", 0)
    loaded = JukeboxModel.from_pretrained(fixture_dir)
    assert not any(t.is_meta for t in [*loaded.parameters(), *loaded.buffers()])
    assert loaded.priors[2].prior.fc_proj_out.weight is loaded.priors[2].prior.embed_tokens.weight
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
