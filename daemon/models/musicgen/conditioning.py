"""What the decoder attends to: encoded text (and chroma for melody checkpoints), with the null
condition appended as a second batch half when classifier-free guidance is on.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from daemon.audio.types import Audio
from daemon.models.musicgen.chroma import chromagram
from daemon.models.musicgen.loader import MusicgenBundle
from protocol.errors import Unsupported

#: `(input_ids, attention_mask) -> hidden states [B, S, H_text]` float32: a prompt's text encoder.
TextEncoderFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Conditioning:
    """Decoder conditioning for a batch of B prompts.

    `hidden_states` is `[B, S, H]`, or `[2B, S, H]` with the null condition as the second half
    when `guided`. For melody checkpoints `prefix` is set: the states are prepended to the
    decoder's input instead of being attended to by cross-attention.

    `attention_bias` `[B or 2B, S]` (float, cross-attention only) is added to the attention scores
    of each state: a jam's weighted prompts scale each prompt's share of the attention this way.
    """

    hidden_states: torch.Tensor
    attention_mask: torch.Tensor | None  # [B or 2B, S], cross-attention only
    guided: bool
    prefix: bool
    attention_bias: torch.Tensor | None = None

    @property
    def batch_size(self) -> int:
        return self.hidden_states.shape[0] // (2 if self.guided else 1)


def uses_guidance(texts: Sequence[str | None], melody: Audio | None, guidance_scale: float) -> bool:
    """Guidance only changes anything when some condition differs from the null one."""
    return guidance_scale > 1 and (melody is not None or any(t is not None for t in texts))


@torch.inference_mode()
def build_conditioning(
    bundle: MusicgenBundle,
    texts: Sequence[str | None],
    *,
    guidance_scale: float,
    melody: Audio | None = None,
    melody_offset_s: float = 0.0,
    encoder: TextEncoderFn | None = None,
) -> Conditioning:
    """Encode `texts` (None: unconditional) and, on melody checkpoints, `melody`.

    `melody_offset_s` shifts the melody for later windows of a long render, so each window is
    conditioned on the part of the melody it plays over. `encoder` replaces the checkpoint's text
    encoder (`text_encoder.TextEncoder`: a bfloat16 copy for approximate engines).
    """
    if melody is not None and not bundle.is_melody:
        raise Unsupported(f"model {bundle.model_id} has no melody conditioning; use a melody checkpoint such as facebook/musicgen-melody")
    guided = uses_guidance(texts, melody, guidance_scale)
    model = bundle.model
    text_states, text_mask = _encode_texts(bundle, texts, encoder)
    if guided:
        text_states = torch.cat([text_states, torch.zeros_like(text_states)])
        text_mask = torch.cat([text_mask, torch.zeros_like(text_mask)])
    if not bundle.is_melody:
        text_states = text_states * text_mask[..., None]
        return Conditioning(text_states, text_mask, guided=guided, prefix=False)

    # Melody checkpoints: [chroma prefix | text], the chroma projected and tiled to chroma_length.
    text_states = text_states * text_mask[..., None]
    batch = len(texts)
    null_chroma = torch.zeros((batch, 1, model.config.num_chroma), device=bundle.device)
    null_chroma[:, :, 0] = 1
    if melody is not None:
        shifted = _shift(melody, melody_offset_s)
        chroma = chromagram(shifted, bundle.chroma).to(bundle.device).expand(batch, -1, -1)
        null_chroma = torch.zeros_like(chroma)
        null_chroma[:, :, 0] = 1
    else:
        chroma = null_chroma
    if guided:
        chroma = torch.cat([chroma, null_chroma])
    if model.config.num_chroma != model.decoder.config.hidden_size:
        chroma = model.audio_enc_to_dec_proj(chroma)
    length = model.config.chroma_length
    if chroma.shape[1] < length:
        chroma = chroma.repeat(1, math.ceil(length / chroma.shape[1]), 1)
    states = torch.cat([chroma[:, :length], text_states], dim=1)
    return Conditioning(states, None, guided=guided, prefix=True)


def _encode_texts(bundle: MusicgenBundle, texts: Sequence[str | None],
                  encoder: TextEncoderFn | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Text encoder states `[B, S, H_dec]` and mask `[B, S]`; None texts get the null condition."""
    model = bundle.model
    hidden = model.decoder.config.hidden_size
    if all(t is None for t in texts):
        # transformers' unconditional inputs: one zero state, masked out.
        states = torch.zeros((len(texts), 1, model.config.text_encoder.hidden_size), device=bundle.device)
        mask = torch.zeros((len(texts), 1), dtype=torch.long, device=bundle.device)
    else:
        tokens = bundle.tokenizer([t or "" for t in texts], padding=True, return_tensors="pt").to(bundle.device)
        if encoder is not None:
            states = encoder(tokens.input_ids, tokens.attention_mask)
        else:
            states = model.text_encoder(input_ids=tokens.input_ids, attention_mask=tokens.attention_mask).last_hidden_state
        mask = tokens.attention_mask
        for row, text in enumerate(texts):
            if text is None:  # a null prompt inside a batch of texts
                mask[row] = 0
    if model.config.text_encoder.hidden_size != hidden and getattr(model.decoder.config, "cross_attention_hidden_size", None) is None:
        states = model.enc_to_dec_proj(states)
    return states, mask


def _shift(melody: Audio, offset_s: float) -> Audio:
    """The melody from `offset_s` on, looped when the render outlasts it."""
    start = int(round(offset_s * melody.sample_rate)) % melody.frames
    if start == 0:
        return melody
    import numpy as np

    return Audio(np.concatenate([melody.samples[:, start:], melody.samples[:, :start]], axis=1), melody.sample_rate)
