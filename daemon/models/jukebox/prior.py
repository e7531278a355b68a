"""A Jukebox prior: an autoregressive transformer over one level's music tokens, conditioned
on the level above (upsamplers), on artist/genre/timing, and on lyrics (top prior).

Two lyric layouts exist in the checkpoints:
  is_encoder_decoder (1b top prior): the window's lyric tokens are a prefix of the sequence,
      [lyrics | music], in one vocabulary (music ids shifted by `lyric_vocab_size`).
  separate encoder (5b top prior): a lyric encoder whose output the music decoder reads
      through cross-attention layers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .conditioner import LabelConditioner, MusicTokenConditioner
from .config import PriorConfig
from .kv_cache import WindowCache
from .static_step import fill_cross, stack_step
from .transformer import Conv1D, LayerStack


class PositionalEmbedding(nn.Module):
    def __init__(self, n_ctx: int, width: int):
        super().__init__()
        self.pos_emb = nn.Parameter(torch.empty(n_ctx, width))


class TokenTransformer(nn.Module):
    """Embeddings, the layer stack and the output head over a window of `n_ctx` positions.

    The input at position p is the token at p - 1; position 0 gets a start embedding (the
    artist/genre embedding, or a learnt `start_token` without metadata).
    """

    def __init__(self, config: PriorConfig, n_ctx: int, vocab_size: int, metadata_start: bool, is_encoder: bool):
        super().__init__()
        self.n_ctx = n_ctx
        self.vocab_size = vocab_size
        self.embed_tokens = nn.Embedding(vocab_size, config.hidden_size)
        if not metadata_start:
            self.start_token = nn.Parameter(torch.empty(1, config.hidden_size))
        self.pos_emb = PositionalEmbedding(n_ctx, config.hidden_size)
        self.transformer = LayerStack(config, n_ctx)
        # without a merged decoder the conditioning is added again after the stack, and the
        # output head shares the input embedding
        self.add_cond_after_transformer = not config.merged_decoder
        if not is_encoder:
            self.fc_proj_out = nn.Linear(config.hidden_size, vocab_size, bias=False)
            if not config.merged_decoder:
                self.fc_proj_out.weight = self.embed_tokens.weight

    def start_embedding(self, batch: int, metadata_start: torch.Tensor | None) -> torch.Tensor:
        """[B, 1, W]"""
        if metadata_start is not None:
            return metadata_start.view(batch, 1, -1)
        return self.start_token.view(1, 1, -1).expand(batch, 1, -1)

    def inputs(
        self, tokens: torch.Tensor, start: torch.Tensor, cond: torch.Tensor | None, begin: int, end: int
    ) -> torch.Tensor:
        """Input embeddings [B, end - begin, W] of positions begin..end-1.

        tokens [B, >= end - 1]: the sequence so far; start [B, 1, W]; cond [B, n_ctx, W] or [B, 1, W].
        """
        if begin == 0:
            prev = self.embed_tokens(tokens[:, : end - 1])
            hidden = torch.cat([start.to(prev.dtype), prev], dim=1)
        else:
            hidden = self.embed_tokens(tokens[:, begin - 1 : end - 1])
        hidden = hidden + self.pos_emb.pos_emb[begin:end]
        return hidden if cond is None else hidden + _positions(cond, begin, end)

    def head(self, hidden: torch.Tensor, cond: torch.Tensor | None, begin: int) -> torch.Tensor:
        """Hidden states [B, T, W] of positions begin.. -> logits [B, T, vocab]."""
        if self.add_cond_after_transformer and cond is not None:
            hidden = hidden + _positions(cond, begin, begin + hidden.shape[1])
        return self.fc_proj_out(hidden)

    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Teacher-forced hidden states [B, n_ctx, W] of a full window of tokens [B, n_ctx] (no head)."""
        start = self.start_embedding(tokens.shape[0], None)
        return self.transformer(self.inputs(tokens, start, None, 0, tokens.shape[1]))


def _positions(cond: torch.Tensor, begin: int, end: int) -> torch.Tensor:
    """Per-position conditioning [B, n, W] sliced to begin..end-1, or broadcast [B, 1, W]."""
    return cond if cond.shape[1] == 1 else cond[:, begin:end]


@dataclass
class WindowConditioning:
    """Everything a window is conditioned on.

    start [B, 1, W] | None; audio [B, T_seq, W] | None (per position of the whole sequence,
    lyric prefix included); lyrics [B, nb_relevant_lyric_tokens] | None; encoder_states
    [B, nb_relevant_lyric_tokens, W] | None (separate lyric encoder only).
    """

    start: torch.Tensor | None
    audio: torch.Tensor | None
    lyrics: torch.Tensor | None
    encoder_states: torch.Tensor | None


class JukeboxPrior(nn.Module):
    """One level's prior; module names match the checkpoints' `priors.{level}.*` keys."""

    def __init__(self, config: PriorConfig, raw_to_tokens: int, cond_downsample: int | None):
        super().__init__()
        self.config = config
        self.level = config.level
        self.n_ctx = config.n_ctx
        self.raw_to_tokens = raw_to_tokens  # audio samples per token of this level
        self.cond_downsample = cond_downsample  # tokens of this level per token of the level above
        self.sample_length = config.n_ctx * raw_to_tokens  # samples one window covers
        self.music_vocab_size = config.music_vocab_size
        if self.level != 0:
            self.conditioner_blocks = MusicTokenConditioner(config)
        if config.metadata_conditioning:
            self.metadata_embedding = LabelConditioner(config, include_time_signal=self.level == 0)
        self.is_encoder_decoder = config.is_encoder_decoder
        self.lyric_len = config.nb_relevant_lyric_tokens
        # the per-token step sampling uses; `JukeboxModel.set_step_mode` swaps in the fixed-shape
        # (optionally compiled) one at load time
        self.fixed_shape_step = None
        if config.is_encoder_decoder:
            self.music_shift = config.lyric_vocab_size
            self.prior = TokenTransformer(
                config,
                config.nb_relevant_lyric_tokens + config.n_ctx,
                config.lyric_vocab_size + config.music_vocab_size,
                metadata_start=True,
                is_encoder=False,
            )
        else:
            self.music_shift = 0
            if self.lyric_len > 0:
                enc = config.encoder_config
                if enc is None:
                    raise ValueError(f"prior {self.level} reads lyrics but its config has no encoder_config")
                self.encoder = TokenTransformer(enc, self.lyric_len, config.lyric_vocab_size, False, True)
                self.encoder.proj_in = Conv1D(enc.hidden_size, config.hidden_size)
                self.encoder.final_layer_norm = nn.LayerNorm(config.hidden_size, eps=1e-5)
                self.encoder.lm_head = nn.Linear(config.hidden_size, config.lyric_vocab_size, bias=False)
            self.prior = TokenTransformer(
                config, config.n_ctx, config.music_vocab_size, config.metadata_conditioning, is_encoder=False
            )

    # -- conditioning -------------------------------------------------------------------

    def window_metadata(self, labels: torch.Tensor, start: int, total_length: int, offset: int) -> torch.Tensor:
        """Tokenizer labels [B, 4 + n_genres + n_lyrics] -> this window's metadata [B, 4 + n_genres + nb_lyrics].

        start: first token of the window; total_length, offset: samples.
        """
        metadata = labels.clone()
        metadata[:, 0] = total_length
        metadata[:, 1] = offset + start * self.raw_to_tokens
        metadata[:, 2] = self.sample_length
        n_head = 4 + self.config.max_nb_genres
        if self.lyric_len == 0:
            return metadata[:, :n_head]
        rows = [
            _lyric_window(labels[i, n_head:], self.lyric_len, metadata[i, 0], metadata[i, 1], metadata[i, 2])
            for i in range(labels.shape[0])
        ]
        return torch.cat([metadata[:, :n_head], torch.stack(rows)], dim=1)

    def window_lyric_indices(self, labels: torch.Tensor, start: int, total_length: int, offset: int) -> list[list[int]]:
        """Per row of labels, the index in the full lyrics of each lyric token `window_metadata` gives
        the window (-1: left padding of lyrics shorter than `nb_relevant_lyric_tokens`)."""
        timing = labels[:, :3].clone()
        timing[:, 0] = total_length
        timing[:, 1] = offset + start * self.raw_to_tokens
        timing[:, 2] = self.sample_length
        n_lyrics = labels.shape[1] - 4 - self.config.max_nb_genres
        return [_lyric_indices(n_lyrics, self.lyric_len, *timing[i]) for i in range(labels.shape[0])]

    def upper_window(self, upper_tokens: torch.Tensor, start: int, end: int) -> torch.Tensor:
        """The level-above tokens under window [start, end) of this level, zero-padded to n_ctx / cond_downsample.

        (transformers 4.40.2 returned the whole unsliced sequence here: upstream bug 1.)
        """
        ds = self.cond_downsample
        window = upper_tokens[:, start // ds : end // ds]
        missing = self.n_ctx // ds - window.shape[1]
        if missing > 0:
            window = torch.cat([window, window.new_zeros(window.shape[0], missing)], dim=1)
        return window.long()

    def conditioning(self, upper_tokens: torch.Tensor | None, metadata: torch.Tensor | None) -> WindowConditioning:
        """upper_tokens [B, n_ctx / cond_downsample] (upsamplers), metadata from `window_metadata`."""
        lyrics = None
        start = timing = None
        if metadata is not None:
            n_labels = metadata.shape[1] - self.lyric_len
            metadata, lyrics = metadata[:, :n_labels], metadata[:, n_labels:]
            if self.config.metadata_conditioning:
                start, timing = self.metadata_embedding(metadata)
        if self.level != 0:
            if upper_tokens is None:
                raise ValueError(f"prior {self.level} needs the tokens of the level above")
            audio = self.conditioner_blocks(upper_tokens)
        else:
            audio = timing
        encoder_states = None
        if self.is_encoder_decoder:
            if audio is not None:
                prefix = audio.new_zeros(audio.shape[0], self.lyric_len, audio.shape[2])
                audio = torch.cat([prefix, audio], dim=1)
        elif self.lyric_len > 0:
            encoder_states = self.encode_lyrics(lyrics)
        return WindowConditioning(start, audio, lyrics, encoder_states)

    def encode_lyrics(self, lyrics: torch.Tensor) -> torch.Tensor:
        """Lyric tokens [B, nb] -> encoder states [B, nb, W] for the cross-attention layers."""
        hidden = self.encoder.encode(lyrics)
        return self.encoder.final_layer_norm(self.encoder.proj_in(hidden))

    def sequence(self, music_tokens: torch.Tensor, cond: WindowConditioning) -> torch.Tensor:
        """The token sequence the transformer sees: [lyrics | music + shift] or music. [B, T_seq]"""
        if not self.is_encoder_decoder:
            return music_tokens
        return torch.cat([cond.lyrics.to(music_tokens.device), music_tokens + self.music_shift], dim=1)

    def music_from_sequence(self, tokens: torch.Tensor) -> torch.Tensor:
        """Sampled sequence ids -> music codes. Lyric ids sampled at music positions become 0, as in the reference."""
        return (tokens - self.music_shift).clamp(min=0)

    # -- full forward ---------------------------------------------------------------------

    @torch.no_grad()
    def teacher_forced_logits(
        self, music_tokens: torch.Tensor, upper_tokens: torch.Tensor | None, metadata: torch.Tensor | None
    ) -> torch.Tensor:
        """Logits [B, T_seq, vocab] for a full window music_tokens [B, n_ctx], as the reference's
        `forward_tokens(..., get_preds=True)["preds"]` (lyric positions included for the 1b top prior)."""
        if music_tokens.shape[1] != self.n_ctx:
            raise ValueError(f"prior {self.level} takes windows of {self.n_ctx} tokens, got {music_tokens.shape[1]}")
        cond = self.conditioning(upper_tokens, metadata)
        tokens = self.sequence(music_tokens.long(), cond)
        batch = tokens.shape[0]
        net = self.prior
        hidden = net.inputs(tokens, net.start_embedding(batch, cond.start), cond.audio, 0, tokens.shape[1])
        hidden = net.transformer(hidden, cond.encoder_states)
        return net.head(hidden, cond.audio, 0)

    @torch.no_grad()
    def lyric_attention(self, music_tokens: torch.Tensor, metadata: torch.Tensor, layer: int, head: int) -> torch.Tensor:
        """Attention [B, n_ctx, nb_relevant_lyric_tokens] of a full window's music positions over the
        window's lyric tokens, in top-prior layer `layer` and head `head` (a prime or cross-attention
        layer): what Jukebox's lyric alignment reads (transformers' `forward_tokens(get_attn_weights=)`).

        music_tokens [B, n_ctx]; metadata from `window_metadata`. Rows need not sum to 1: a prime layer's
        softmax also covers the block of music positions its lyric prefix is rounded up with.
        """
        cond = self.conditioning(None, metadata)
        tokens = self.sequence(music_tokens.long(), cond)
        net = self.prior
        hidden = net.inputs(tokens, net.start_embedding(tokens.shape[0], cond.start), cond.audio, 0, tokens.shape[1])
        probs = net.transformer.lyric_probs(hidden, layer, cond.encoder_states)[:, head]
        if self.is_encoder_decoder:  # the music positions' queries over the lyric positions' keys
            return probs[:, self.lyric_len :, : self.lyric_len].float()
        return probs.float()

    # -- sampling primitives (the loop lives in sampler.py) --------------------------------

    def new_cache(self, batch: int) -> WindowCache:
        weight = self.prior.embed_tokens.weight
        return self.prior.transformer.new_cache(batch, weight.device, weight.dtype)

    @torch.no_grad()
    def prefill(self, tokens: torch.Tensor, cond: WindowConditioning, cache: WindowCache) -> None:
        """Feed positions 0..T-1 of the sequence tokens [B, T] into `cache` in one pass."""
        net = self.prior
        hidden = net.inputs(tokens, net.start_embedding(tokens.shape[0], cond.start), cond.audio, 0, tokens.shape[1])
        net.transformer(hidden, cond.encoder_states, cache)

    @torch.no_grad()
    def step_logits(self, previous: torch.Tensor | None, cond: WindowConditioning, cache: WindowCache) -> torch.Tensor:
        """Logits [B, 1, vocab] of position `cache.position`, whose input is the token before it.

        previous [B, 1] (None at position 0, where the start embedding is the input).
        """
        net = self.prior
        t = cache.position
        if t == 0:
            hidden = net.start_embedding(cache.batch, cond.start)
        else:
            hidden = net.embed_tokens(previous)
        hidden = hidden + net.pos_emb.pos_emb[t : t + 1]
        if cond.audio is not None:
            hidden = hidden + _positions(cond.audio, t, t + 1)
        hidden = net.transformer.step(hidden, cache, cond.encoder_states)
        return net.head(hidden, cond.audio, t)


    @torch.no_grad()
    def sampling_step(self, previous: torch.Tensor | None, cond: WindowConditioning, cache: WindowCache) -> torch.Tensor:
        """Logits [B, 1, vocab] of the next position, with the step chosen at load time."""
        if self.fixed_shape_step is None:
            return self.step_logits(previous, cond, cache)
        if cache.position_tensor is None:
            fill_cross(self.prior.transformer, cache, cond.encoder_states)
            cache.position_tensor = torch.tensor(cache.position, device=self.prior.embed_tokens.weight.device)
        if previous is None:  # position 0 reads the start embedding; any id will do here
            previous = torch.zeros(cache.batch, 1, dtype=torch.long, device=cache.position_tensor.device)
        logits = self.fixed_shape_step(previous, cache.position_tensor, cond, cache)
        cache.position += 1
        cache.position_tensor += 1
        return logits

    def static_step_logits(
        self, previous: torch.Tensor, position: torch.Tensor, cond: WindowConditioning, cache: WindowCache
    ) -> torch.Tensor:
        """`step_logits` with fixed shapes: previous [B, 1], position a 0-d tensor. Does not advance the cache."""
        net = self.prior
        embedded = net.embed_tokens(previous)
        start = net.start_embedding(cache.batch, cond.start).to(embedded.dtype)
        hidden = torch.where(position == 0, start, embedded)
        hidden = hidden + net.pos_emb.pos_emb.index_select(0, position.view(1))
        cond_here = None
        if cond.audio is not None:
            cond_here = cond.audio if cond.audio.shape[1] == 1 else cond.audio.index_select(1, position.view(1))
            hidden = hidden + cond_here
        hidden = stack_step(net.transformer, hidden, position, cache)
        return net.head(hidden, cond_here, 0)


def _lyric_window(
    lyrics: torch.Tensor, n: int, total_length: torch.Tensor, offset: torch.Tensor, duration: torch.Tensor
) -> torch.Tensor:
    """The `n` lyric tokens around the window's midpoint in time, left-padded with 0 if fewer.

    Computed with the same tensor arithmetic as the reference so the choice agrees exactly.
    """
    if len(lyrics) < n:
        return torch.cat([lyrics.new_zeros(n - len(lyrics)), lyrics])
    first = _lyric_indices(len(lyrics), n, total_length, offset, duration)[0]
    return lyrics[first : first + 2 * (n // 2)]


def _lyric_indices(
    n_lyrics: int, n: int, total_length: torch.Tensor, offset: torch.Tensor, duration: torch.Tensor
) -> list[int]:
    """Where `_lyric_window`'s tokens come from in the full lyrics (-1 for the left padding)."""
    if n_lyrics < n:
        return [-1] * (n - n_lyrics) + list(range(n_lyrics))
    midpoint = int(n_lyrics * (offset + duration / 2.0) / total_length)
    midpoint = min(max(midpoint, n // 2), n_lyrics - n // 2)
    return list(range(midpoint - n // 2, midpoint + n // 2))
