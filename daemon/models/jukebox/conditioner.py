"""What a prior is conditioned on: upper-level music tokens, artist/genre, and timing."""

from __future__ import annotations

import torch
from torch import nn

from .config import PriorConfig
from .vqvae import Resnet, UpsampleBlock


class MusicTokenConditioner(nn.Module):
    """Upper-level tokens [B, T_up] -> per-position conditioning [B, T_up * cond_downsample, W]."""

    def __init__(self, config: PriorConfig):
        super().__init__()
        level = config.level

        def make_resnet() -> Resnet:
            return Resnet(
                config.res_conv_width,
                config.res_conv_depth,
                growth_rate=config.res_dilation_growth_rate,
                dilation_cycle=config.res_dilation_cycle,
                conv_multiplier=config.res_convolution_multiplier,
                scale_residuals=bool(config.conv_res_scale),
            )

        self.embed_tokens = nn.Embedding(config.music_vocab_size, config.hidden_size)
        self.upsampler = UpsampleBlock(
            config.hidden_size,
            config.res_conv_width,
            config.res_downs_t[level],
            config.res_strides_t[level],
            make_resnet,
        )
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=1e-5)

    def forward(self, upper_tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed_tokens(upper_tokens.long()).permute(0, 2, 1)
        return self.layer_norm(self.upsampler(x).permute(0, 2, 1))


class RangeEmbedding(nn.Module):
    """Embeds positions in [pos_min, pos_max) into `bins` bins, interpolated over `n_time` steps.

    Given start and end [B, 1], position i of n_time is start + (end - start) * i / n_time.
    """

    def __init__(self, n_time: int, bins: int, pos_range: tuple[float, float], width: int, clamp: bool = False):
        super().__init__()
        self.n_time = n_time
        self.bins = bins
        self.pos_min, self.pos_max = pos_range
        self.clamp = clamp
        self.emb = nn.Embedding(bins, width)

    def forward(self, start: torch.Tensor, end: torch.Tensor | None = None) -> torch.Tensor:
        start = start.float()
        if self.n_time != 1:
            end = end.clamp(self.pos_min, self.pos_max).float() if self.clamp else end.float()
            fraction = torch.arange(0, self.n_time, dtype=torch.float, device=start.device).view(1, -1) / self.n_time
            position = start + (end - start) * fraction
        else:
            position = start
        normalised = (position - self.pos_min) / (self.pos_max - self.pos_min)
        bins = (self.bins * normalised).floor().long()
        if bins.min() < 0 or bins.max() >= self.bins:
            raise ValueError(
                f"timing outside the range the model was trained on [{self.pos_min}, {self.pos_max}) samples"
            )
        return self.emb(bins)


class LabelConditioner(nn.Module):
    """Metadata [B, 4 + n_genres] -> start embedding [B, 1, W] and timing embedding [B, n_ctx, W].

    Metadata columns: total length, offset and window length (samples), artist id, genre ids
    (-1 for an empty genre slot). The timing embedding exists only for the top prior.
    """

    def __init__(self, config: PriorConfig, include_time_signal: bool):
        super().__init__()
        width = config.hidden_size
        n_genres, n_artists = config.metadata_dims
        self.max_nb_genres = config.max_nb_genres
        self.bow_genre_emb = nn.Embedding(n_genres, width)
        self.artist_emb = nn.Embedding(n_artists, width)
        self.include_time_signal = include_time_signal
        if include_time_signal:
            sr, bins = config.sampling_rate, config.timing_dims
            total_range = (config.min_duration * sr, config.max_duration * sr)
            self.total_length_emb = RangeEmbedding(1, bins, total_range, width)
            self.absolute_pos_emb = RangeEmbedding(config.n_ctx, bins, (0.0, config.max_duration * sr), width)
            self.relative_pos_emb = RangeEmbedding(config.n_ctx, bins, (0.0, 1.0), width, clamp=True)

    def forward(self, metadata: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        total_length, offset, length = metadata[:, 0:1], metadata[:, 1:2], metadata[:, 2:3]
        artist = metadata[:, 3:4]
        genre = metadata[:, 4 : 4 + self.max_nb_genres]
        if artist.min() < 0 or artist.max() >= self.artist_emb.num_embeddings:
            raise ValueError(f"artist id outside [0, {self.artist_emb.num_embeddings})")
        if genre.max() >= self.bow_genre_emb.num_embeddings:
            raise ValueError(f"genre id outside [0, {self.bow_genre_emb.num_embeddings})")
        genre_emb = self.bow_genre_emb(genre.clamp(0))
        present = (genre >= 0).to(genre_emb.dtype).unsqueeze(2)  # -1 marks an empty genre slot
        genre_emb = (genre_emb * present).sum(dim=1, keepdim=True)
        start_emb = genre_emb + self.artist_emb(artist)
        if not self.include_time_signal:
            return start_emb, None
        total = total_length.float()
        start, end = offset.float(), (offset + length).float()
        timing = (
            self.total_length_emb(total)
            + self.absolute_pos_emb(start, end)
            + self.relative_pos_emb(start / total, end / total)
        )
        return start_emb, timing
