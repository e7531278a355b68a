"""MusicGen checkpoints built from configs with random weights, for tests and benchmarks.

A preset is built once, deterministically from its seed, written with `save_pretrained`
(model, tokenizer, feature-extractor settings, generation config) and from then on loaded
through the same loader as any downloaded checkpoint, so tests exercise the real path.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

log = logging.getLogger(__name__)

#: EnCodec 32 kHz, as in facebook/encodec_32khz (MusicGen's codec): 640 samples a frame, 50 Hz.
_ENCODEC_32KHZ = dict(
    sampling_rate=32000, audio_channels=1, upsampling_ratios=[8, 5, 4, 4], target_bandwidths=[2.2],
    num_filters=64, hidden_size=128, codebook_size=2048, num_residual_layers=1, norm_type="weight_norm",
    kernel_size=7, last_kernel_size=7, residual_kernel_size=3, dilation_growth_rate=2,
    use_causal_conv=False, pad_mode="reflect", compress=2, num_lstm_layers=2, trim_right_ratio=1.0,
    use_conv_shortcut=False, normalize=False, chunk_length_s=None, overlap=None,
)
#: t5-base, MusicGen small/medium's text encoder.
_T5_BASE = dict(vocab_size=32128, d_model=768, d_kv=64, d_ff=3072, num_layers=12, num_heads=12,
                relative_attention_num_buckets=32, feed_forward_proj="relu", layer_norm_epsilon=1e-6)
#: The melody feature extractor's settings, as in facebook/musicgen-melody's preprocessor_config.json.
_MELODY_FEATURES = dict(feature_extractor_type="MusicgenMelodyFeatureExtractor", feature_size=12,
                        sampling_rate=32000, hop_length=4096, chunk_length=30, n_fft=16384, num_chroma=12,
                        padding_value=0.0, padding_side="right", return_attention_mask=False,
                        stem_indices=[3, 2], processor_class="MusicgenMelodyProcessor")


@dataclass(frozen=True)
class PresetSpec:
    """How to build one preset: sub-config overrides and what kind of model it is."""

    text_encoder: dict
    audio_encoder: dict
    decoder: dict
    melody: bool = False
    seed: int = 0


def _tiny(audio_channels: int = 1, melody: bool = False) -> PresetSpec:
    # Tiny but shaped like the real thing: 32 kHz, 50 Hz frames, 4 codebooks per channel
    # (EnCodec picks 4 quantizers when bandwidth = 4 x 50 Hz x log2(1024) bits = 2 kbps).
    codes = 1024
    return PresetSpec(
        text_encoder=dict(vocab_size=384, d_model=32, d_kv=16, d_ff=64, num_layers=2, num_heads=2,
                          relative_attention_num_buckets=8, feed_forward_proj="relu"),
        audio_encoder=dict(_ENCODEC_32KHZ, num_filters=4, hidden_size=16, codebook_size=codes,
                           num_lstm_layers=1, target_bandwidths=[2.0]),
        decoder=dict(vocab_size=codes, pad_token_id=codes, bos_token_id=codes, hidden_size=32,
                     num_hidden_layers=2, num_attention_heads=2, ffn_dim=64, max_position_embeddings=2048,
                     num_codebooks=4 * audio_channels, audio_channels=audio_channels),
        melody=melody,
    )


PRESETS: dict[str, Callable[[], PresetSpec]] = {
    "debug/musicgen": lambda: _tiny(),
    "debug/musicgen-stereo": lambda: _tiny(audio_channels=2),
    "debug/musicgen-melody": lambda: _tiny(melody=True),
    # Exactly facebook/musicgen-small's architecture (t5-base, EnCodec 32 kHz, 24 x 1024 decoder).
    "random/musicgen-small": lambda: PresetSpec(
        text_encoder=_T5_BASE,
        audio_encoder=_ENCODEC_32KHZ,
        decoder=dict(vocab_size=2048, pad_token_id=2048, bos_token_id=2048, hidden_size=1024,
                     num_hidden_layers=24, num_attention_heads=16, ffn_dim=4096, max_position_embeddings=2048,
                     num_codebooks=4, audio_channels=1),
    ),
}


def is_preset(model_id: str) -> bool:
    return model_id in PRESETS


def ensure_preset(model_id: str, cache_dir: Path) -> Path:
    """Return the folder holding the preset, building and saving it on first use."""
    spec = PRESETS[model_id]()
    folder = Path(cache_dir) / "presets" / model_id.replace("/", "--")
    if (folder / "config.json").is_file():
        return folder
    log.info("building preset %s (random weights, seed %d) in %s", model_id, spec.seed, folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    # Build in a temporary folder and rename, so a crash never leaves a half-written preset.
    staging = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
    try:
        _build(spec).save_pretrained(staging)
        _save_processor(spec, staging)
        try:
            os.rename(staging, folder)
        except OSError:
            if not (folder / "config.json").is_file():  # another process may have won the race
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def _build(spec: PresetSpec):
    from transformers import EncodecConfig, GenerationConfig, T5Config
    from transformers import MusicgenConfig, MusicgenDecoderConfig, MusicgenForConditionalGeneration
    from transformers import MusicgenMelodyConfig, MusicgenMelodyDecoderConfig, MusicgenMelodyForConditionalGeneration

    text = T5Config(**spec.text_encoder)
    codec = EncodecConfig(**spec.audio_encoder)
    if spec.melody:
        config = MusicgenMelodyConfig(text_encoder=text, audio_encoder=codec,
                                      decoder=MusicgenMelodyDecoderConfig(**spec.decoder))
        model_cls = MusicgenMelodyForConditionalGeneration
    else:
        config = MusicgenConfig(text_encoder=text, audio_encoder=codec, decoder=MusicgenDecoderConfig(**spec.decoder))
        model_cls = MusicgenForConditionalGeneration
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        model = model_cls(config).eval()
        # A fresh EnCodec has all-zero codebooks, so every code would decode to the same sound.
        for layer in model.audio_encoder.quantizer.layers:
            layer.codebook.embed.normal_()
            layer.codebook.embed_avg.copy_(layer.codebook.embed)
    pad = spec.decoder["pad_token_id"]
    model.generation_config = GenerationConfig(
        do_sample=True, guidance_scale=3.0, top_k=250, max_length=1500,
        pad_token_id=pad, bos_token_id=pad, decoder_start_token_id=pad,
    )
    return model


def _save_processor(spec: PresetSpec, folder: Path) -> None:
    from transformers import ByT5Tokenizer, EncodecFeatureExtractor

    # ByT5's byte tokenizer needs no vocabulary file, so presets work offline.
    ByT5Tokenizer().save_pretrained(folder)
    if spec.melody:
        # transformers' melody feature extractor needs torchaudio; riffd computes chroma itself
        # and only needs these settings, written in the checkpoint's own schema.
        (folder / "preprocessor_config.json").write_text(json.dumps(_MELODY_FEATURES, indent=2))
    else:
        EncodecFeatureExtractor(feature_size=1, sampling_rate=spec.audio_encoder["sampling_rate"]).save_pretrained(folder)
