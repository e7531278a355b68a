"""The hierarchical VQ-VAE: audio <-> discrete codes at three time resolutions.

Level 0 is the bottom level (hop 8 in the real models), the last level the top (hop 128).
Module and parameter names follow the Hugging Face checkpoints so state dicts load as is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from .config import VQVAEConfig


class ResConvBlock(nn.Module):
    """relu -> dilated conv3 -> relu -> conv1, added back to the input."""

    def __init__(self, width: int, hidden: int, dilation: int, res_scale: float):
        super().__init__()
        self.conv1d_1 = nn.Conv1d(width, hidden, 3, 1, dilation, dilation)
        self.conv1d_2 = nn.Conv1d(hidden, width, 1, 1, 0)
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1d_2(torch.relu(self.conv1d_1(torch.relu(x))))
        return x + self.res_scale * h


class Resnet(nn.Module):
    """`depth` residual blocks with dilations growth_rate**d (d cycling every `dilation_cycle`)."""

    def __init__(
        self,
        width: int,
        depth: int,
        *,
        growth_rate: int,
        dilation_cycle: int | None,
        conv_multiplier: int,
        scale_residuals: bool,
        reverse_dilation: bool = False,
    ):
        super().__init__()
        res_scale = 1.0 / math.sqrt(depth) if scale_residuals else 1.0
        blocks = []
        for d in range(depth):
            cycle_depth = d if dilation_cycle is None else d % dilation_cycle
            blocks.append(ResConvBlock(width, conv_multiplier * width, growth_rate**cycle_depth, res_scale))
        if reverse_dilation:
            blocks = blocks[::-1]
        self.resnet_block = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.resnet_block:
            x = block(x)
        return x


def resnet_for(config: VQVAEConfig, width: int, depth: int, reverse_dilation: bool = False) -> Resnet:
    return Resnet(
        width,
        depth,
        growth_rate=config.res_dilation_growth_rate,
        dilation_cycle=config.res_dilation_cycle,
        conv_multiplier=config.res_convolution_multiplier,
        scale_residuals=bool(config.conv_res_scale),
        reverse_dilation=reverse_dilation,
    )


class DownsampleBlock(nn.Module):
    """`down_t` x (strided conv + resnet), then a projection to the code width. [B, C, T] -> [B, E, T / stride**down_t]"""

    def __init__(self, config: VQVAEConfig, in_width: int, width: int, depth: int, down_t: int, stride_t: int):
        super().__init__()
        blocks: list[nn.Module] = []
        for i in range(down_t):
            blocks.append(nn.Conv1d(in_width if i == 0 else width, width, stride_t * 2, stride_t, stride_t // 2))
            blocks.append(resnet_for(config, width, depth))
        self.downsample_block = nn.ModuleList(blocks)
        self.proj_out = nn.Conv1d(width, config.embed_dim, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.downsample_block:
            x = block(x)
        return self.proj_out(x)


class UpsampleBlock(nn.Module):
    """A projection in, then `down_t` x (resnet + transposed conv). [B, E, T] -> [B, E, T * stride**down_t]

    Used by the VQ-VAE decoders and, with the prior's config, by the upsamplers' conditioner.
    """

    def __init__(self, embed_dim: int, width: int, down_t: int, stride_t: int, make_resnet) -> None:
        super().__init__()
        self.proj_in = nn.Conv1d(embed_dim, width, 3, 1, 1)
        blocks: list[nn.Module] = []
        for i in range(down_t):
            blocks.append(make_resnet())
            out_width = width if i < down_t - 1 else embed_dim
            blocks.append(nn.ConvTranspose1d(width, out_width, stride_t * 2, stride_t, stride_t // 2))
        self.upsample_block = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj_in(x)
        for block in self.upsample_block:
            x = block(x)
        return x


class Encoder(nn.Module):
    """Audio [B, C, T] -> latents of VQ-VAE level `n_steps - 1`, through `n_steps` downsample blocks."""

    def __init__(self, config: VQVAEConfig, width: int, depth: int, n_steps: int):
        super().__init__()
        self.level_blocks = nn.ModuleList(
            DownsampleBlock(
                config,
                config.conv_input_shape if i == 0 else config.embed_dim,
                width,
                depth,
                config.res_downs_t[i],
                config.res_strides_t[i],
            )
            for i in range(n_steps)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.level_blocks:
            x = block(x)
        return x


class Decoder(nn.Module):
    """Code vectors of one level [B, E, T_l] -> audio [B, C, T], through `n_steps` upsample blocks."""

    def __init__(self, config: VQVAEConfig, width: int, depth: int, n_steps: int):
        super().__init__()
        self.level_blocks = nn.ModuleList(
            UpsampleBlock(
                config.embed_dim,
                width,
                config.res_downs_t[i],
                config.res_strides_t[i],
                lambda: resnet_for(config, width, depth, reverse_dilation=True),
            )
            for i in range(n_steps)
        )
        self.out = nn.Conv1d(config.embed_dim, config.conv_input_shape, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in reversed(self.level_blocks):
            x = block(x)
        return self.out(x)


class Codebook(nn.Module):
    """Nearest-neighbour quantiser of one level; `codebook` is [n_codes, E]."""

    def __init__(self, n_codes: int, width: int):
        super().__init__()
        self.register_buffer("codebook", torch.zeros(n_codes, width))

    def encode(self, latents: torch.Tensor) -> torch.Tensor:
        """[B, E, T] -> codes [B, T]."""
        batch, _, length = latents.shape
        x = latents.permute(0, 2, 1).reshape(batch * length, -1)
        codes_t = self.codebook.t()
        # squared distances expanded the same way as the reference, so ties break identically
        distance = (x**2).sum(-1, keepdim=True) - 2 * x @ codes_t + (codes_t**2).sum(0, keepdim=True)
        return distance.min(dim=-1).indices.view(batch, length)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [B, T] -> code vectors [B, E, T]."""
        return nn.functional.embedding(codes, self.codebook).permute(0, 2, 1)


class Bottleneck(nn.Module):
    def __init__(self, config: VQVAEConfig):
        super().__init__()
        self.level_blocks = nn.ModuleList(
            Codebook(config.nb_discrete_codes, config.embed_dim) for _ in range(config.levels)
        )


class JukeboxVQVAE(nn.Module):
    """Encode audio [B, T, C] to codes per level and decode codes back to audio [B, T, C]."""

    def __init__(self, config: VQVAEConfig):
        super().__init__()
        self.config = config
        self.levels = config.levels
        self.hop_lengths = config.hop_lengths
        encoders, decoders = [], []
        for level in range(config.levels):
            width = config.res_conv_width * config.multipliers[level]
            depth = config.res_conv_depth * config.multipliers[level]
            encoders.append(Encoder(config, width, depth, level + 1))
            decoders.append(Decoder(config, width, depth, level + 1))
        self.encoders = nn.ModuleList(encoders)
        self.decoders = nn.ModuleList(decoders)
        self.bottleneck = Bottleneck(config)

    @torch.no_grad()
    def encode(self, audio: torch.Tensor, start_level: int = 0, end_level: int | None = None) -> list[torch.Tensor]:
        """Audio [B, T, C] -> codes of levels start..end-1 (bottom first), each [B, T / hop_l].

        T must be a multiple of the top hop length.
        """
        end_level = self.levels if end_level is None else end_level
        self._check_levels(start_level, end_level)
        if audio.dim() != 3 or audio.shape[-1] != self.config.conv_input_shape:
            raise ValueError(f"audio must be [batch, samples, {self.config.conv_input_shape}], got {tuple(audio.shape)}")
        top_hop = self.hop_lengths[end_level - 1]
        if audio.shape[1] % top_hop:
            raise ValueError(f"audio length {audio.shape[1]} is not a multiple of {top_hop} samples")
        x = audio.permute(0, 2, 1).float()
        return [
            self.bottleneck.level_blocks[level].encode(self.encoders[level](x))
            for level in range(start_level, end_level)
        ]

    @torch.no_grad()
    def decode(
        self, music_tokens: Sequence[torch.Tensor], start_level: int = 0, end_level: int | None = None
    ) -> torch.Tensor:
        """Decode the codes of `start_level` ([B, T_l], first of `music_tokens`) to audio [B, T, C].

        Like the reference, only the first (lowest requested) level is decoded; the others
        are accepted for signature compatibility.
        """
        end_level = self.levels if end_level is None else end_level
        self._check_levels(start_level, end_level)
        codes = music_tokens[0]
        if codes.dim() != 2:
            raise ValueError(f"music tokens must be [batch, time], got {tuple(codes.shape)}")
        if codes.numel() and (codes.min() < 0 or codes.max() >= self.config.nb_discrete_codes):
            raise ValueError(f"music tokens must lie in [0, {self.config.nb_discrete_codes})")
        latents = self.bottleneck.level_blocks[start_level].decode(codes)
        return self.decoders[start_level](latents).permute(0, 2, 1)

    def _check_levels(self, start_level: int, end_level: int) -> None:
        if not 0 <= start_level < end_level <= self.levels:
            raise ValueError(f"need 0 <= start_level < end_level <= {self.levels}, got {start_level}, {end_level}")
