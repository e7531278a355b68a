"""`debug/jukebox`: a tiny Jukebox with random weights, for tests and CPU development.

Same architecture as the reference fixture (tests/fixtures/jukebox-tiny: 3 levels, hops
8/32/128, 64 codes, a 16-layer top prior with a 16-token lyric prefix, 3-layer upsamplers),
written as a Hugging Face folder (config.json, model.safetensors, vocabularies) so it loads
through the same `JukeboxModel.from_pretrained` as a real checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .config import JukeboxConfig
from .model import JukeboxModel
from .prior import PositionalEmbedding, TokenTransformer
from .conditioner import RangeEmbedding
from .transformer import Conv1D

PRESETS = ("debug/jukebox",)
_REVISION = 2

# v3 lyric vocabulary: 78 characters, id 0 for unknown
_LYRIC_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.,:;!?-'\"()[] \t\n"


def _upsampler(level: int) -> dict[str, Any]:
    return dict(
        level=level, hidden_size=32, num_layers=3, n_heads=1, n_ctx=64, blocks=8,
        attention_pattern="raw_column_previous_row_attention", is_encoder_decoder=False,
        merged_decoder=False, nb_relevant_lyric_tokens=0, lyric_vocab_size=79, music_vocab_size=64,
        metadata_dims=[6, 12], mask=True, init_scale=0.4, res_conv_width=16, res_conv_depth=2,
        res_dilation_growth_rate=3, res_dilation_cycle=8, conv_res_scale=level == 1,
    )


DEBUG_CONFIG: dict[str, Any] = {
    "model_type": "jukebox",
    "nb_priors": 3,
    "sampling_rate": 44100,
    "timing_dims": 64,
    "min_duration": 0,
    "max_duration": 600.0,
    "max_nb_genres": 1,
    "metadata_conditioning": True,
    "vqvae_config": dict(
        nb_discrete_codes=64, embed_dim=16, res_conv_width=8, res_conv_depth=2, multipliers=[2, 1, 1],
        res_downs_t=[3, 2, 2], res_strides_t=[2, 2, 2], res_dilation_growth_rate=3, levels=3,
        sample_length=128 * 128, hop_fraction=[0.125, 0.5, 0.5],
    ),
    "prior_config_list": [
        dict(
            level=0, hidden_size=32, num_layers=16, n_heads=2, n_ctx=128, blocks=16,
            attention_pattern="enc_dec_with_lyrics", is_encoder_decoder=True, merged_decoder=False,
            nb_relevant_lyric_tokens=16, lyric_vocab_size=79, music_vocab_size=64,
            metadata_dims=[10, 20], mask=True, init_scale=0.2,
            alignment_layer=15, alignment_head=1,  # the prime-attention layer (lyric alignment)
        ),
        _upsampler(1),
        _upsampler(2),
    ],
}

DEBUG_VOCAB = {
    "lyrics.json": {"<unk>": 0, **{c: i + 1 for i, c in enumerate(_LYRIC_CHARS)}},
    "artists.json": {"unknown": 0, "zac brown band": 3, "unknown.v2": 0, "zac_brown_band.v2": 5},
    "genres.json": {"unknown": 0, "country": 7, "unknown.v2": 0, "country.v2": 4},
}
DEBUG_TOKENIZER = {"version": ["v3", "v2", "v2"], "n_genres": 1, "max_n_lyric_tokens": 512}


def ensure_preset(name: str, cache_dir: Path, seed: int = 0) -> Path:
    """The folder of preset `name` under `cache_dir`, built on first use. Loadable with
    `JukeboxModel.from_pretrained(folder)` and `JukeboxTokenizer.from_pretrained(folder)`."""
    if name not in PRESETS:
        raise ValueError(f"unknown Jukebox preset {name!r}; known: {', '.join(PRESETS)}")
    # the revision changes with the preset's files (2: alignment layer in the config), so old caches are not reused
    folder = Path(cache_dir) / name.replace("/", "--") / f"r{_REVISION}-seed-{seed}"
    if (folder / "model.safetensors").is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    # build in a sibling temp folder and rename, so a crash never leaves half a preset
    staging = Path(tempfile.mkdtemp(prefix=".building-", dir=folder.parent))
    try:
        save_random_model(DEBUG_CONFIG, staging, seed)
        for file_name, vocab in DEBUG_VOCAB.items():
            (staging / file_name).write_text(json.dumps(vocab), encoding="utf-8")
        (staging / "tokenizer_config.json").write_text(json.dumps(DEBUG_TOKENIZER), encoding="utf-8")
        try:
            os.rename(staging, folder)
        except OSError:
            if not (folder / "model.safetensors").is_file():  # not a concurrent build that won
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def save_random_model(raw_config: dict[str, Any], folder: Path, seed: int) -> None:
    """Write config.json and model.safetensors of a model with random weights drawn from `seed`."""
    from safetensors.torch import save_file

    config = JukeboxConfig.from_dict(raw_config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = JukeboxModel(config)
        init_random(model)
    (folder / "config.json").write_text(json.dumps(raw_config, indent=1), encoding="utf-8")
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})


@torch.no_grad()
def init_random(model: JukeboxModel) -> None:
    """Initialise like the reference (small normal embeddings and projections), and fill the
    codebooks with normal_() as the fixture does: a zero codebook maps all audio to code 0."""
    for prior, prior_config in zip(model.priors, model.config.priors):
        scale = prior_config.init_scale
        for module in prior.modules():
            if isinstance(module, nn.Embedding):
                module.weight.normal_(0.0, 0.02 * scale)
            elif isinstance(module, Conv1D):
                module.weight.normal_(0.0, 0.02 * scale)
                module.bias.zero_()
            elif isinstance(module, PositionalEmbedding):
                module.pos_emb.normal_(0.0, 0.01 * scale)
            elif isinstance(module, TokenTransformer) and hasattr(module, "start_token"):
                module.start_token.normal_(0.0, 0.01 * scale)
            elif isinstance(module, nn.LayerNorm):
                module.weight.fill_(1.0)
                module.bias.zero_()
            elif isinstance(module, nn.Linear) and module.weight is not prior.prior.embed_tokens.weight:
                module.weight.normal_(0.0, 0.02 * scale)
        for module in prior.modules():  # after the generic pass, which also saw their embeddings
            if isinstance(module, RangeEmbedding):
                module.emb.weight.normal_(0.0, 0.01 * scale)
    for codebook in model.vqvae.bottleneck.level_blocks:
        codebook.codebook.normal_()
