import torch
import pytest
from safetensors.torch import load_file

from daemon.models.jukebox import JukeboxModel, JukeboxTokenizer
from daemon.models.jukebox.presets import ensure_preset


@pytest.fixture(scope="module")
def preset_dir(tmp_path_factory):
    return ensure_preset("debug/jukebox", tmp_path_factory.mktemp("models"))


def test_preset_has_the_fixture_architecture(preset_dir, fixture_dir):
    ours = load_file(str(preset_dir / "model.safetensors"))
    reference = load_file(str(fixture_dir / "model.safetensors"))
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in reference.items()}


def test_preset_loads_and_samples(preset_dir):
    model = JukeboxModel.from_pretrained(preset_dir)
    tokenizer = JukeboxTokenizer.from_pretrained(preset_dir)
    labels = tokenizer(artist="Zac Brown Band", genres="Country", lyrics="la la la")["input_ids"]
    tokens = model.ancestral_sample(labels, sample_length=64 * 128, seed=0)
    assert [t.shape for t in tokens] == [(1, 64), (1, 256), (1, 1024)]
    audio = model.decode_level(tokens, 2)
    assert audio.shape == (1, 64 * 128, 1) and torch.isfinite(audio).all()
    codebooks = [b.codebook for b in model.vqvae.bottleneck.level_blocks]
    assert all(c.std() > 0.5 for c in codebooks)  # filled with normal_(), not left at zero


def test_preset_is_deterministic_per_seed(preset_dir, tmp_path):
    again = ensure_preset("debug/jukebox", tmp_path / "a")
    other = ensure_preset("debug/jukebox", tmp_path / "b", seed=1)
    ours, same, different = (load_file(str(d / "model.safetensors")) for d in (preset_dir, again, other))
    assert all(torch.equal(ours[k], same[k]) for k in ours)
    assert not torch.equal(ours["priors.0.prior.embed_tokens.weight"], different["priors.0.prior.embed_tokens.weight"])


def test_preset_is_built_once(tmp_path):
    folder = ensure_preset("debug/jukebox", tmp_path)
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert ensure_preset("debug/jukebox", tmp_path) == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no staging leftovers


def test_unknown_preset(tmp_path):
    with pytest.raises(ValueError, match="unknown Jukebox preset"):
        ensure_preset("debug/jukebox-huge", tmp_path)
