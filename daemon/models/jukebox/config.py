"""Jukebox configuration in the Hugging Face schema, as frozen dataclasses.

`JukeboxConfig.from_dict` reads the `config.json` of a Hugging Face Jukebox checkpoint
(`openai/jukebox-1b-lyrics`, `openai/jukebox-5b-lyrics`, or the tiny test fixture). Keys
missing from the file take the defaults of transformers 4.40.2's `JukeboxConfig`, because
`save_pretrained` only writes the keys that differ from those defaults.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Mapping

# Attention kinds a layer can have. The names are the ones of the Hugging Face config.
BLOCK = "block_attn"  # attend within the current block of `block_ctx` positions
TRANSPOSE_BLOCK = "transpose_block_attn"  # attend to the same offset in every earlier block
PREV_BLOCK = "prev_block_attn"  # attend to the whole previous block
DENSE = "dense_attn"  # attend to every earlier position
PRIME = "prime_attn"  # attend only to the lyric (prime) prefix of the sequence
CROSS = "cross_attention"  # attend to the lyric encoder's output (5b models)

_ROW_COLUMN_PREVIOUS = (BLOCK, TRANSPOSE_BLOCK, PREV_BLOCK)
_PRIME_PRIME_DENSE = (PRIME, PRIME, DENSE)
# 5b top prior: six row/column/previous triples and a cross-attention layer, then six times
# three triples and a cross-attention layer (79 layers, so every 10th layer sees the lyrics)
_LARGE_SEPARATED = (*_ROW_COLUMN_PREVIOUS * 6, CROSS) + (*_ROW_COLUMN_PREVIOUS * 3, CROSS) * 6


def layer_attention(pattern: str, layer: int) -> str:
    """The attention kind of `layer` under the config's `attention_pattern`."""
    if pattern == "raw_column_previous_row_attention":
        return _ROW_COLUMN_PREVIOUS[layer % 3]
    if pattern == "enc_dec_with_lyrics":
        # every 16th layer lets the music attend to the lyric prefix
        if layer % 16 == 15:
            return _PRIME_PRIME_DENSE[layer % 3]
        return _ROW_COLUMN_PREVIOUS[layer % 3]
    if pattern == "large_separated_enc_dec_w_lyrics":
        return _LARGE_SEPARATED[layer % len(_LARGE_SEPARATED)]
    if pattern == "full_dense_attention":
        return DENSE
    raise ValueError(f"unknown Jukebox attention_pattern {pattern!r}")


@dataclass(frozen=True)
class VQVAEConfig:
    """The hierarchical VQ-VAE (`vqvae_config`). Level 0 is the bottom (finest) level."""

    nb_discrete_codes: int = 2048  # codebook size of every level
    embed_dim: int = 64  # width of a code vector
    levels: int = 3
    res_conv_width: int = 32  # conv width, times `multipliers[level]`
    res_conv_depth: int = 4  # residual blocks per down/up step, times `multipliers[level]`
    multipliers: tuple[int, ...] = (2, 1, 1)
    res_convolution_multiplier: int = 1  # hidden width of a residual block / its width
    res_dilation_growth_rate: int = 3  # dilation of residual block d is rate**d
    res_dilation_cycle: int | None = None  # dilation depth restarts every `cycle` blocks
    res_downs_t: tuple[int, ...] = (3, 2, 2)  # stride-2 steps added by each level
    res_strides_t: tuple[int, ...] = (2, 2, 2)
    conv_res_scale: bool = False  # scale residual branches by 1/sqrt(depth)
    conv_input_shape: int = 1  # audio channels
    hop_fraction: tuple[float, ...] = (0.125, 0.5, 0.5)  # window hop / n_ctx, in prior order
    sample_length: int = 1058304

    @property
    def hop_lengths(self) -> tuple[int, ...]:
        """Audio samples per code at each VQ-VAE level (bottom first), e.g. (8, 32, 128)."""
        hops, total = [], 1
        for stride, down in zip(self.res_strides_t, self.res_downs_t):
            total *= stride**down
            hops.append(total)
        return tuple(hops)


@dataclass(frozen=True)
class PriorConfig:
    """One prior (`prior_config_list[i]`). Prior 0 is the top (coarsest) level."""

    level: int = 0
    hidden_size: int = 2048  # transformer width
    num_layers: int = 72
    n_heads: int = 2
    n_ctx: int = 6144  # music tokens in one window
    blocks: int | None = 64  # a window is factored as [blocks, n_ctx // blocks]
    attention_pattern: str = "enc_dec_with_lyrics"
    attention_multiplier: float = 0.25  # attention width / hidden_size
    mlp_multiplier: float = 1.0
    attn_res_scale: bool = False  # scale residuals by 1/num_layers
    mask: bool = False  # causal masking in full forward passes
    act_fn: str = "quick_gelu"
    spread: int | None = None
    is_encoder_decoder: bool = True  # lyrics and music in one sequence (1b top prior)
    merged_decoder: bool = True  # False: add the conditioning after the transformer, tie head
    nb_relevant_lyric_tokens: int = 384  # lyric tokens seen by one window
    lyric_vocab_size: int = 80
    music_vocab_size: int = 2048
    encoder_config: PriorConfig | None = None  # separate lyric encoder (5b top prior)
    metadata_conditioning: bool = True
    metadata_dims: tuple[int, int] = (604, 7898)  # (genres, artists) embedding rows
    max_nb_genres: int = 1
    timing_dims: int = 64  # bins of the timing embeddings
    sampling_rate: int = 44100
    min_duration: float = 0.0  # seconds; range of the total-length embedding
    max_duration: float = 600.0
    res_conv_width: int = 128  # upper-level token conditioner (upsamplers only)
    res_conv_depth: int = 3
    res_convolution_multiplier: int = 1
    res_dilation_growth_rate: int = 1
    res_dilation_cycle: int | None = None
    conv_res_scale: bool | None = None
    res_downs_t: tuple[int, ...] = (3, 2, 2)
    res_strides_t: tuple[int, ...] = (2, 2, 2)
    init_scale: float = 0.2  # std scale of random initialisation (debug presets only)
    # the layer and head whose attention over the lyrics is the lyric alignment (top prior; the
    # defaults are transformers', the 5b's; OpenAI's 1b-lyrics uses layer 63, head 0)
    alignment_layer: int = 68
    alignment_head: int = 2

    @property
    def attention_width(self) -> int:
        return int(self.attention_multiplier * self.hidden_size)

    @property
    def lyric_prefix_len(self) -> int:
        """Keys a prime-attention layer sees: the lyric tokens rounded up past a block boundary.

        The original Jukebox rounds `nb_relevant_lyric_tokens` up to the next multiple of
        `blocks` (one extra block when it is already a multiple); the checkpoints were trained so.
        """
        return (self.nb_relevant_lyric_tokens // self.blocks + 1) * self.blocks


@dataclass(frozen=True)
class JukeboxConfig:
    vqvae: VQVAEConfig = field(default_factory=VQVAEConfig)
    priors: tuple[PriorConfig, ...] = ()
    sampling_rate: int = 44100

    @property
    def hop_fraction(self) -> tuple[float, ...]:
        return self.vqvae.hop_fraction

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], **overrides: Any) -> JukeboxConfig:
        """Parse a Hugging Face `config.json` dict.

        `overrides` replace top-level keys first (e.g. `min_duration=0`, as transformers'
        `from_pretrained(..., min_duration=0)` does).
        """
        raw = {**raw, **overrides}
        if raw.get("model_type", "jukebox") != "jukebox":
            raise ValueError(f"not a Jukebox config (model_type={raw.get('model_type')!r})")
        vqvae = _parse(VQVAEConfig, raw.get("vqvae_config") or {})
        nb_priors = int(raw.get("nb_priors", 3))
        prior_dicts = raw.get("prior_config_list")
        if prior_dicts is None:
            prior_dicts = [raw.get(f"prior_{i}") or {} for i in range(nb_priors)]
        # these live once at the top level and override each prior's copy, as in transformers
        shared = {
            "sampling_rate": raw.get("sampling_rate", 44100),
            "timing_dims": raw.get("timing_dims", 64),
            "min_duration": raw.get("min_duration", 0),
            "max_duration": raw.get("max_duration", 600.0),
            "max_nb_genres": raw.get("max_nb_genres", 5),
            "metadata_conditioning": raw.get("metadata_conditioning", True),
        }
        priors = []
        for level, prior_dict in enumerate(prior_dicts[:nb_priors]):
            prior = _parse_prior({**prior_dict, **shared})
            priors.append(dataclasses.replace(prior, level=level))
        if len(priors) != nb_priors:
            raise ValueError(f"config lists {len(priors)} priors, nb_priors={nb_priors}")
        config = cls(vqvae=vqvae, priors=tuple(priors), sampling_rate=int(shared["sampling_rate"]))
        config.validate()
        return config

    def validate(self) -> None:
        if self.vqvae.levels != len(self.priors):
            raise ValueError(f"{self.vqvae.levels} VQ-VAE levels but {len(self.priors)} priors")
        for prior in self.priors:
            if prior.blocks and prior.n_ctx % prior.blocks:
                raise ValueError(f"prior {prior.level}: n_ctx {prior.n_ctx} not a multiple of blocks")
            for layer in range(prior.num_layers):
                layer_attention(prior.attention_pattern, layer)

    def raw_to_tokens(self, prior_level: int) -> int:
        """Audio samples per token of prior `prior_level` (prior 0 is the top)."""
        return self.vqvae.hop_lengths[len(self.priors) - 1 - prior_level]


def _parse_prior(raw: Mapping[str, Any]) -> PriorConfig:
    encoder = raw.get("encoder_config")
    parsed = _parse(PriorConfig, {k: v for k, v in raw.items() if k != "encoder_config"})
    if encoder:
        parsed = dataclasses.replace(parsed, encoder_config=_parse_prior(encoder))
    return parsed


def _parse(kind: type, raw: Mapping[str, Any]) -> Any:
    """Build dataclass `kind` from the keys it knows; lists become tuples (frozen, hashable)."""
    known = {f.name for f in dataclasses.fields(kind)}
    values = {}
    for key, value in raw.items():
        if key in known and key != "encoder_config":
            values[key] = tuple(value) if isinstance(value, list) else value
    if "min_duration" in values:
        values["min_duration"] = float(values["min_duration"])
    if "max_duration" in values:
        values["max_duration"] = float(values["max_duration"])
    return kind(**values)


__all__ = [
    "BLOCK", "TRANSPOSE_BLOCK", "PREV_BLOCK", "DENSE", "PRIME", "CROSS",
    "JukeboxConfig", "PriorConfig", "VQVAEConfig", "layer_attention",
]
