"""A transformers MusicGen checkpoint mapped to riffd's decoder weights: the one place that
reads transformers' module tree for decoding.

`DecoderWeights` is plain data (tensors, and each projection in the format `EngineOptions` picks),
so the Python, compiled and native steps all read the same thing and nothing reaches back
into transformers while decoding.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from daemon.models.musicgen.options import EngineOptions
from daemon.models.musicgen.condition_precision import CrossProjection, condition_precision, cross_projection
from daemon.models.musicgen.speed import Int8Linear, Linear, compute_dtype, make_linear

#: Activations MusicGen configs name, as the functions transformers' ACT2FN runs for them.
ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"gelu": F.gelu, "relu": F.relu}


@dataclass(frozen=True)
class NormWeights:
    """A LayerNorm's parameters; calling it normalises the last dimension."""

    weight: torch.Tensor  # [H]
    bias: torch.Tensor  # [H]
    eps: float

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, (x.shape[-1],), self.weight, self.bias, self.eps)


@dataclass(frozen=True)
class LayerWeights:
    """One pre-norm decoder layer. The cross-attention parts are None on melody checkpoints
    (their condition is a prefix of the input instead)."""

    self_norm: NormWeights
    qkv: Linear  # [3H, H]: query, key and value projections fused
    self_out: Linear  # [H, H]
    cross_norm: NormWeights | None
    cross_q: Linear | None  # [H, H]
    cross_out: Linear | None  # [H, H]
    # The key and value projections of the condition, run once a window (bias-free: a zero state
    # gives a zero key, which the null condition relies on): the checkpoint's float32 tensors, or
    # for approximate engines a bfloat16 or int8 copy (`condition_precision`).
    cross_k: CrossProjection | None  # [H, H_cond]
    cross_v: CrossProjection | None  # [H, H_cond]
    ffn_norm: NormWeights
    fc1: Linear  # [F, H]
    fc2: Linear  # [H, F]

    @property
    def projections(self) -> list[Linear]:
        """The projections one step multiplies by, in order (absent cross parts left out)."""
        parts = [self.qkv, self.self_out, self.cross_q, self.cross_out, self.fc1, self.fc2]
        return [p for p in parts if p is not None]


@dataclass(frozen=True)
class DecoderWeights:
    """Everything a decode step reads, in one engine mode's formats."""

    options: EngineOptions
    dtype: torch.dtype  # activations and float caches
    heads: int
    head_dim: int
    vocab: int  # codes per codebook (the pad/BOS code is one more row of each embedding table)
    num_codebooks: int
    activation: Callable[[torch.Tensor], torch.Tensor]
    embeddings: torch.Tensor  # [K, V + 1, H]: one table per codebook
    positions: torch.Tensor  # [max_positions, H] sinusoidal
    layers: list[LayerWeights]
    final_norm: NormWeights
    lm_heads: Linear  # [K * V, H]: the codebooks' heads fused
    # Every layer's cross-attention key and value projections stacked, layer by layer (k0, v0, k1,
    # ...: `[2 * L * H, H_cond]`), where the condition is made in bfloat16 or int8: they all read
    # the same states, so one product makes every key and value (each layer's `cross_k`/`cross_v`
    # is a view of it), with the same bits (tests/musicgen/test_text_encoder.py checks both).
    # bfloat16: oneDNN sums each output over the same inputs in the same order; on the 2-core Zen 4
    # the 48 products of musicgen-small took 18 ms alone and 14 ms as one. int8 (riffd's kernel,
    # where bfloat16 is not native: AVX2, AVX-VNNI): each activation row is quantised on its own
    # and each output's integer sum is exact; 41 rows (the bench's prompt) took 25.9 ms as 48
    # products and 21.2 as one with AVX2 emulated on the Zen 4 (9.6 and 7.8 ms on its AVX-512
    # branch): one quantisation of the rows, one pool region, and no Python per projection instead
    # of 48. None elsewhere: float32 keeps the checkpoint's own tensors (one product each, as
    # transformers).
    cross_kv: CrossProjection | None = None

    @property
    def hidden(self) -> int:
        return self.heads * self.head_dim

    @property
    def max_positions(self) -> int:
        return int(self.positions.shape[0])

    @property
    def bytes_per_step(self) -> int:
        """Bytes of weights one decode step reads: every projection once, plus the lm heads."""
        return self.lm_heads.nbytes + sum(p.nbytes for layer in self.layers for p in layer.projections)

    @property
    def norms(self) -> list[NormWeights]:
        found = [self.final_norm]
        for layer in self.layers:
            found += [n for n in (layer.self_norm, layer.cross_norm, layer.ffn_norm) if n is not None]
        return found


def decoder_weights(model: Any, options: EngineOptions) -> DecoderWeights:
    """Map a loaded Musicgen(Melody)ForConditionalGeneration to riffd's decoder weights.

    float32 keeps the checkpoint's own tensors (no copy), so float32 decodes exactly as
    transformers does; other formats convert once, here.
    """
    causal_lm = model.decoder
    decoder = causal_lm.model.decoder
    config = causal_lm.config
    dtype = compute_dtype(options)
    activation_name = str(getattr(config, "activation_function", "gelu"))
    if activation_name not in ACTIVATIONS:
        raise ValueError(f"MusicGen decoder activation {activation_name!r} is not one riffd runs ({', '.join(ACTIVATIONS)})")
    heads = int(config.num_attention_heads)
    cross_kv = _stacked_cross(decoder.layers, options)
    # With a stacked copy, each layer's projections are views of it (no second copy).
    views: list[CrossProjection] | None = None
    if isinstance(cross_kv, torch.Tensor):
        views = list(cross_kv.chunk(2 * len(decoder.layers)))
    elif cross_kv is not None:
        each = cross_kv.out_features // (2 * len(decoder.layers))
        views = [cross_kv.row_slice(i * each, (i + 1) * each) for i in range(2 * len(decoder.layers))]
    layers = [_layer_weights(layer, options, dtype, (views[2 * i], views[2 * i + 1]) if views else None)
              for i, layer in enumerate(decoder.layers)]
    return DecoderWeights(
        options=options,
        dtype=dtype,
        heads=heads,
        head_dim=int(config.hidden_size) // heads,
        vocab=int(config.vocab_size),
        num_codebooks=int(config.num_codebooks),
        activation=ACTIVATIONS[activation_name],
        embeddings=torch.stack([e.weight.detach() for e in decoder.embed_tokens]).to(dtype),
        positions=decoder.embed_positions.weights.detach().to(dtype),
        layers=layers,
        final_norm=_norm(decoder.layer_norm, dtype),
        lm_heads=make_linear([head.weight.detach() for head in causal_lm.lm_heads], options.heads_options()),
        cross_kv=cross_kv,
    )


def _stacked_cross(layers: Any, options: EngineOptions) -> CrossProjection | None:
    """`DecoderWeights.cross_kv`: the layers' cross key and value projections as one bfloat16 tensor
    or one int8 projection on riffd's kernel, where the condition is made in that precision (else,
    on melody checkpoints, and where the kernel cannot take the stacked shape, None)."""
    crosses: list[Any] = [getattr(layer, "encoder_attn", None) for layer in layers]
    if not crosses or any(cross is None for cross in crosses):
        return None
    weights = [w.detach() for cross in crosses for w in (cross.k_proj.weight, cross.v_proj.weight)]
    precision = condition_precision(options, weights[0].device)
    if precision == "bfloat16":
        return torch.cat([w.to(torch.bfloat16) for w in weights])
    if precision == "int8":
        stacked = cross_projection(torch.cat(weights), "int8")
        # whole kernel blocks per projection, so each layer's is a view (row_slice)
        if isinstance(stacked, Int8Linear) and stacked.packed is not None \
                and weights[0].shape[0] % stacked.packed.packed.shape[2] == 0:
            return stacked
    return None


def _norm(module: Any, dtype: torch.dtype) -> NormWeights:
    return NormWeights(module.weight.detach().to(dtype), module.bias.detach().to(dtype), float(module.eps))


def _layer_weights(layer: Any, options: EngineOptions, dtype: torch.dtype,
                   cross_kv: tuple[CrossProjection, CrossProjection] | None = None) -> LayerWeights:
    """One layer's weights; `cross_kv`: its cross key and value projections, made already (views of
    `DecoderWeights.cross_kv`)."""
    attn = layer.self_attn
    cross = getattr(layer, "encoder_attn", None)
    if cross is not None and (cross.k_proj.bias is not None or cross.v_proj.bias is not None):
        raise ValueError("cross-attention key/value projections with a bias are not MusicGen's")
    return LayerWeights(
        self_norm=_norm(layer.self_attn_layer_norm, dtype),
        qkv=make_linear([attn.q_proj.weight.detach(), attn.k_proj.weight.detach(), attn.v_proj.weight.detach()],
                        options),
        self_out=make_linear([attn.out_proj.weight.detach()], options),
        cross_norm=_norm(layer.encoder_attn_layer_norm, dtype) if cross is not None else None,
        cross_q=make_linear([cross.q_proj.weight.detach()], options) if cross is not None else None,
        cross_out=make_linear([cross.out_proj.weight.detach()], options) if cross is not None else None,
        cross_k=cross_kv[0] if cross_kv else _cross(cross.k_proj.weight, options) if cross is not None else None,
        cross_v=cross_kv[1] if cross_kv else _cross(cross.v_proj.weight, options) if cross is not None else None,
        ffn_norm=_norm(layer.final_layer_norm, dtype),
        fc1=make_linear([layer.fc1.weight.detach()], options),
        fc2=make_linear([layer.fc2.weight.detach()], options),
    )


def _cross(weight: torch.Tensor, options: EngineOptions) -> CrossProjection:
    """A cross-attention key/value projection, in the precision the condition is made in
    (`condition_precision`: float32's own tensor for exact engines, a bfloat16 or int8 copy where fast)."""
    return cross_projection(weight, condition_precision(options, weight.device))
