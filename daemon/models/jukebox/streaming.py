"""Decode a growing token sequence to audio chunk by chunk, every chunk final.

Upsampling fills the bottom level window by window, and tokens already sampled never change,
so audio can be streamed while sampling goes on. A sample of audio depends on the tokens
within the VQ-VAE decoder's receptive field, so each chunk is cut `margin_tokens` short of
the tokens available and decoded with `margin_tokens` of left context: the chunks joined are
the full decode (up to float rounding), with no crossfade needed.

    decoder = StreamingDecoder(model.vqvae, vqvae_level=0)
    for event in model.sample_windows(...):
        if isinstance(event, WindowSampled) and event.level == bottom:
            send(decoder.push(event.music_tokens[bottom]))
    send(decoder.finish(final_bottom_tokens))
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .vqvae import JukeboxVQVAE


def receptive_radius_tokens(vqvae: JukeboxVQVAE, vqvae_level: int) -> int:
    """An upper bound on how many tokens either side of a token its decoded audio depends on."""
    decoder = vqvae.decoders[vqvae_level]
    radius, frame_samples = 0.0, 1  # radius in frames of the current rate; samples per token at the end
    for block in reversed(decoder.level_blocks):
        for module in block.modules():
            if isinstance(module, nn.Conv1d):
                radius += module.dilation[0] * (module.kernel_size[0] - 1) / 2
            elif isinstance(module, nn.ConvTranspose1d):
                stride = module.stride[0]
                radius = radius * stride + module.kernel_size[0]
                frame_samples *= stride
    radius += (decoder.out.kernel_size[0] - 1) / 2
    return math.ceil(radius / frame_samples) + 1


class StreamingDecoder:
    """Turns the growing tokens [B, T] of one VQ-VAE level into consecutive audio chunks [B, n, C]."""

    def __init__(self, vqvae: JukeboxVQVAE, vqvae_level: int = 0, margin_tokens: int | None = None):
        self.vqvae = vqvae
        self.level = vqvae_level
        self.hop = vqvae.hop_lengths[vqvae_level]
        self.margin = receptive_radius_tokens(vqvae, vqvae_level) if margin_tokens is None else margin_tokens
        self.emitted_tokens = 0  # tokens whose audio has been returned

    def push(self, tokens: torch.Tensor) -> torch.Tensor:
        """Audio of the tokens that are now final: those more than `margin` before the end."""
        return self._decode_until(tokens, tokens.shape[1] - self.margin)

    def finish(self, tokens: torch.Tensor) -> torch.Tensor:
        """Audio of every token not returned yet."""
        return self._decode_until(tokens, tokens.shape[1])

    def _decode_until(self, tokens: torch.Tensor, end: int) -> torch.Tensor:
        if tokens.shape[1] < self.emitted_tokens:
            raise ValueError("tokens only grow: got fewer than were already decoded")
        if end <= self.emitted_tokens:
            return torch.zeros(tokens.shape[0], 0, self.vqvae.config.conv_input_shape)
        first = max(0, self.emitted_tokens - self.margin)
        last = min(tokens.shape[1], end + self.margin)
        audio = self.vqvae.decode([tokens[:, first:last]], start_level=self.level)
        chunk = audio[:, (self.emitted_tokens - first) * self.hop : (end - first) * self.hop]
        self.emitted_tokens = end
        return chunk
