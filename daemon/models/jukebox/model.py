"""`JukeboxModel`: the VQ-VAE and the priors, with the sampling entry points users know from
transformers' Jukebox (`ancestral_sample`, `primed_sample`, `continue_sample`, `upsample`),
the upstream bugs fixed, and a streaming variant (`sample_windows`).

Levels: `music_tokens` lists are in prior order (index 0 = top level, coarsest); the
VQ-VAE's own levels are the other way round (0 = bottom), as in the reference.

Sampling keyword arguments (every entry point):
  sample_length             samples of the whole piece, or
  sample_length_in_seconds  seconds (default 24), rounded down to whole top-level tokens
  sample_levels             prior levels to sample (default: all; `upsample`: below the top)
  sampling_temperature      0.98; bottom_temperature 0.99 (the reference's fixed value)
  top_k, top_p              0 = off
  music_codes_only          False (as the reference); True keeps the 1b top prior from drawing lyric ids
  hop_fraction              per prior, window hop / n_ctx (default from the config)
  offset                    samples: where the piece starts in the song
  seed                      a generator owned by the call; None draws from torch's global one
  max_batch_size, lower_batch_size   samples per forward pass, top / lower levels
  chunk_size                accepted and ignored (riffd prefills a window in one pass)
  save_results              only False: nothing is written to disk
  compute_alignments        True: also compute the lyric alignment (the top prior's alignment layer
                            and head over the lyric tokens, as Jukebox's get_alignment); the result
                            is then an `AlignedTokens`, whose `.alignments` holds per sample a float32
                            array [T_top, n_lyric_tokens] (transformers wrote it to disk instead)
  alignment_layer, alignment_head   override the config's (`alignment_layer`, `alignment_head`)
"""

from __future__ import annotations

import logging
import os
from typing import Any
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import nn

from . import loader
from .alignment import AlignedRows, LyricAligner, alignment_layer_head, full_alignment
from .config import JukeboxConfig
from .prior import JukeboxPrior
from .sampler import LevelSampled, SamplingParams, StopCheck, ProgressCallback, WindowSampled, iter_sample, sample_window
from .vqvae import JukeboxVQVAE

log = logging.getLogger(__name__)

Tokens = Sequence[torch.Tensor]  # music tokens per prior, top first, each [B, T_level]
Labels = Sequence[torch.Tensor]  # tokenizer input_ids per prior, each [1 or B, 4 + n_genres (+ lyrics)]

_IGNORED_KWARGS = {"chunk_size"}  # the reference's prefill chunking; riffd prefills in one pass
_META_INIT_BYTES = 256 * 2**20  # checkpoints above this are built on the meta device first


class AlignedTokens(list):
    """Music tokens per prior (a list, as without alignment) and `alignments`: per sample, the lyric
    alignment float32 [T_top, n_lyric_tokens] (see `alignment.py`)."""

    def __init__(self, music_tokens: Sequence[torch.Tensor], alignments: list[np.ndarray]):
        super().__init__(music_tokens)
        self.alignments = alignments


class JukeboxModel(nn.Module):
    def __init__(self, config: JukeboxConfig):
        super().__init__()
        self.config = config
        self.vqvae = JukeboxVQVAE(config.vqvae)
        self.priors = nn.ModuleList(
            JukeboxPrior(
                prior_config,
                raw_to_tokens=config.raw_to_tokens(level),
                # the factor the prior's token conditioner upsamples the level above by
                cond_downsample=prior_config.res_strides_t[level] ** prior_config.res_downs_t[level] if level else None,
            )
            for level, prior_config in enumerate(config.priors)
        )

    # -- loading ------------------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls,
        path_or_hub_id: str | os.PathLike,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        cache_dir: str | os.PathLike | None = None,
        step: str = "eager",
        **config_overrides: Any,
    ) -> JukeboxModel:
        """Load a Hugging Face Jukebox folder or hub id (e.g. 'openai/jukebox-1b-lyrics').

        `dtype` applies to the priors; the VQ-VAE stays float32 (its codes must not move).
        `step`: see `set_step_mode`. `config_overrides` replace top-level config keys, e.g.
        `min_duration=0`.
        """
        folder = loader.resolve(path_or_hub_id, cache_dir)
        config = JukeboxConfig.from_dict(loader.read_config(folder), **config_overrides)
        files = loader.weight_files(folder)
        state = loader.read_weights(files)
        for key, value in state.items():
            if value.is_floating_point():  # priors in the requested dtype; the VQ-VAE's codes stay float32
                state[key] = value.to(dtype if key.startswith("priors.") else torch.float32)
        large = sum(f.stat().st_size for f in files) > _META_INIT_BYTES
        if large:
            # skip allocating and randomly initialising weights the checkpoint replaces (minutes for 5b)
            with torch.device("meta"):
                model = cls(config)
        else:
            model = cls(config)
            model.priors.to(dtype)
        tied_in_file = loader.load_state(model, state, tied=model.tied_keys(), assign=large)
        model._retie()
        loader.check_tied(model, tied_in_file)
        model.eval()
        model.to(device)
        model.set_step_mode(step)
        if step == "compiled":
            model.warm_up()
        log.info("loaded Jukebox from %s (%d priors)", folder, len(model.priors))
        return model

    def set_step_mode(self, mode: str) -> None:
        """How sampling computes each token: "eager" (default; slices the caches to the keys a
        position sees), "static" (fixed shapes: every cache buffer under a mask), or "compiled"
        (the static step through `torch.compile`, for GPUs, where launch overhead dominates)."""
        if mode not in ("eager", "static", "compiled"):
            raise ValueError(f"step mode must be 'eager', 'static' or 'compiled', got {mode!r}")
        for prior in self.priors:
            step = None if mode == "eager" else prior.static_step_logits
            if mode == "compiled":
                step = torch.compile(step, dynamic=False)
            prior.fixed_shape_step = step

    @torch.no_grad()
    def warm_up(self, batch: int = 1) -> None:
        """Run a few sampling steps of every prior, so a compiled step is compiled now rather
        than in the first request. Draws from its own generator: the global RNG is untouched."""
        generator = torch.Generator(device=self.priors[0].prior.embed_tokens.weight.device).manual_seed(0)
        for prior in self.priors:
            config = prior.config
            device = prior.prior.embed_tokens.weight.device
            labels = torch.zeros(batch, 4 + config.max_nb_genres + prior.lyric_len, dtype=torch.long, device=device)
            total = max(prior.sample_length, int(config.min_duration * config.sampling_rate) + 1)
            metadata = prior.window_metadata(labels, 0, total, 0)
            upper = None
            if prior.level:
                upper = torch.zeros(batch, prior.n_ctx // prior.cond_downsample, dtype=torch.long, device=device)
            context = torch.zeros(batch, 0, dtype=torch.long, device=device)
            sample_window(prior, context, upper, metadata, 3, temperature=1.0, generator=generator)

    def tied_keys(self) -> list[str]:
        return [
            f"priors.{i}.prior.fc_proj_out.weight"
            for i, prior in enumerate(self.priors)
            if prior.prior.fc_proj_out.weight is prior.prior.embed_tokens.weight
        ]

    def _retie(self) -> None:
        # loading with assign=True replaces the embedding but not the head sharing it
        for prior, prior_config in zip(self.priors, self.config.priors):
            if not prior_config.merged_decoder:
                prior.prior.fc_proj_out.weight = prior.prior.embed_tokens.weight

    # -- VQ-VAE -------------------------------------------------------------------------

    def encode(self, audio: torch.Tensor, start_level: int = 0, end_level: int | None = None) -> list[torch.Tensor]:
        return self.vqvae.encode(audio, start_level, end_level)

    def decode(self, music_tokens: Sequence[torch.Tensor], start_level: int = 0, end_level: int | None = None):
        return self.vqvae.decode(music_tokens, start_level, end_level)

    def decode_level(self, music_tokens: Sequence[torch.Tensor], level: int) -> torch.Tensor:
        """Audio [B, T, C] decoded from the tokens of prior `level` (0 = top), e.g. a preview."""
        return self.vqvae.decode([music_tokens[level]], start_level=len(self.priors) - 1 - level)

    # -- sampling -----------------------------------------------------------------------

    def ancestral_sample(self, labels: Labels, n_samples: int = 1, **sampling_kwargs: Any) -> list[torch.Tensor]:
        """Sample every level (or `sample_levels`) from nothing. Returns tokens per prior [n, T_l]."""
        if n_samples < 1:
            raise ValueError(f"n_samples must be at least 1, got {n_samples}")
        device = self.priors[0].prior.embed_tokens.weight.device
        music_tokens = [torch.zeros(n_samples, 0, dtype=torch.long, device=device) for _ in self.priors]
        levels = sampling_kwargs.pop("sample_levels", range(len(self.priors)))
        return self._sample(music_tokens, labels, levels, sampling_kwargs)

    def continue_sample(self, music_tokens: Tokens, labels: Labels, **sampling_kwargs: Any) -> list[torch.Tensor]:
        """Extend `music_tokens` (prior order, top first) at every level (or `sample_levels`)."""
        levels = sampling_kwargs.pop("sample_levels", range(len(self.priors)))
        return self._sample(music_tokens, labels, levels, sampling_kwargs)

    def upsample(self, music_tokens: Tokens, labels: Labels, **sampling_kwargs: Any) -> list[torch.Tensor]:
        """Sample the levels below the top from the given top-level tokens.

        (transformers 4.40.2 defaulted to levels [0, 1], resampling the top and never reaching
        the bottom: upstream bug 2.)
        """
        levels = sampling_kwargs.pop("sample_levels", range(1, len(self.priors)))
        return self._sample(music_tokens, labels, levels, sampling_kwargs)

    def primed_sample(self, raw_audio: torch.Tensor, labels: Labels, **sampling_kwargs: Any) -> list[torch.Tensor]:
        """Continue from an audio prime [B, T, C]: encode it, then continue every level.

        The VQ-VAE returns codes bottom first; they are put in prior order (top first) before
        continuing (transformers 4.40.2 did not: upstream bug 3).
        """
        levels = sampling_kwargs.pop("sample_levels", range(len(self.priors)))
        music_tokens = self.prime_tokens(raw_audio)
        return self._sample(music_tokens, labels, levels, sampling_kwargs)

    def prime_tokens(self, raw_audio: torch.Tensor) -> list[torch.Tensor]:
        """Audio prime [B, T, C] -> its codes in prior order (top first), trimmed to whole top tokens."""
        top_hop = self.vqvae.hop_lengths[-1]
        usable = raw_audio.shape[1] // top_hop * top_hop
        if usable == 0:
            raise ValueError(f"an audio prime needs at least {top_hop} samples")
        codes = self.vqvae.encode(raw_audio[:, :usable].to(self.vqvae.bottleneck.level_blocks[0].codebook.device))
        return codes[::-1]

    def sample_windows(
        self,
        music_tokens: Tokens,
        labels: Labels,
        *,
        sample_levels: Sequence[int] | None = None,
        should_stop: StopCheck | None = None,
        progress: ProgressCallback | None = None,
        rng_state: torch.Tensor | None = None,
        compute_alignments: bool = False,
        alignment_layer: int | None = None,
        alignment_head: int | None = None,
        **sampling_kwargs: Any,
    ) -> Iterator[WindowSampled | LevelSampled | AlignedRows]:
        """Streaming form of `continue_sample`: yields `WindowSampled` after every window and
        `LevelSampled` after every level (decode `LevelSampled(level=0)` with `decode_level` for
        a preview, then each bottom `WindowSampled`). `should_stop` is checked before every
        token; when it returns True, `SamplingCancelled` carries the tokens so far.
        `progress(done, total)` counts tokens over all levels.

        `compute_alignments`: `AlignedRows` of the lyric alignment follow each top-level window, as
        rows become final (the rows a prime holds come first); all of them by the top level's end.
        """
        levels = list(range(len(self.priors)) if sample_levels is None else sample_levels)
        tokens, label_tensors, params = self._prepare(music_tokens, labels, sampling_kwargs)
        events = iter_sample(self.priors, tokens, label_tensors, levels, params, should_stop, progress,
                             rng_state=rng_state)
        # no `with torch.no_grad()` around the yield: it would leak into the caller between events
        if not compute_alignments:
            yield from events
            return
        aligner = self.lyric_aligner(label_tensors[0], params, alignment_layer, alignment_head)
        if 0 not in levels and tokens[0].shape[1] < aligner.total_tokens:
            raise ValueError(f"lyric alignment needs the whole top level ({aligner.total_tokens} tokens): sample it, "
                             f"or give all of it (got {tokens[0].shape[1]})")
        rows = aligner.advance(tokens[0])
        if rows is not None:
            yield rows
        for event in events:
            yield event
            if isinstance(event, WindowSampled) and event.level == 0:
                rows = aligner.advance(event.music_tokens[0])
                if rows is not None:
                    yield rows

    def lyric_aligner(self, top_labels: torch.Tensor, params: SamplingParams, layer: int | None = None,
                      head: int | None = None) -> LyricAligner:
        """The lyric aligner of a piece sampled with `params` (ValueError: the model cannot align lyrics)."""
        top = self.priors[0]
        layer, head = alignment_layer_head(top, layer, head)
        return LyricAligner(top, top_labels, total_tokens=params.total_length // top.raw_to_tokens,
                            total_length=params.total_length, offset=params.offset,
                            hop_fraction=params.hop_fraction[0], layer=layer, head=head)

    def _sample(self, music_tokens, labels, sample_levels, sampling_kwargs: dict) -> list[torch.Tensor]:
        result = [t for t in music_tokens]
        rows = []
        for event in self.sample_windows(music_tokens, labels, sample_levels=list(sample_levels), **sampling_kwargs):
            if isinstance(event, AlignedRows):
                rows.append(event)
            else:
                result = event.music_tokens
        if not sampling_kwargs.get("compute_alignments"):
            return result
        n_lyrics = torch.as_tensor(labels[0]).shape[-1] - 4 - self.config.priors[0].max_nb_genres
        return AlignedTokens(result, full_alignment(rows, rows[-1].end, n_lyrics, result[0].shape[0]))

    def _prepare(self, music_tokens, labels, kwargs: dict):
        kwargs = dict(kwargs)
        for name in _IGNORED_KWARGS:
            kwargs.pop(name, None)
        if kwargs.pop("save_results", False):
            raise ValueError("riffd writes nothing to disk while sampling; decode the returned tokens and save them")
        top_hop = self.priors[0].raw_to_tokens
        sample_length = kwargs.pop("sample_length", None)
        seconds = kwargs.pop("sample_length_in_seconds", 24)
        if sample_length is None:
            sample_length = int(seconds * self.config.sampling_rate) // top_hop * top_hop
        if int(sample_length) < top_hop:
            raise ValueError(f"sample length must be at least {top_hop} samples")
        top = self.config.priors[0]
        min_samples, max_samples = top.min_duration * top.sampling_rate, top.max_duration * top.sampling_rate
        if top.metadata_conditioning and not min_samples <= int(sample_length) < max_samples:
            raise ValueError(
                f"sample length {int(sample_length) / top.sampling_rate:.2f} s outside the model's trained range "
                f"[{top.min_duration}, {top.max_duration}) s (load with min_duration=0 for shorter pieces, "
                f"as transformers' docs do)"
            )
        kwargs.setdefault("hop_fraction", self.config.hop_fraction)
        kwargs["hop_fraction"] = tuple(kwargs["hop_fraction"])
        if len(kwargs["hop_fraction"]) != len(self.priors):
            raise ValueError(f"hop_fraction needs {len(self.priors)} values, one per prior")
        try:
            params = SamplingParams(total_length=int(sample_length), **kwargs)
        except TypeError as error:
            raise TypeError(f"unknown sampling argument: {error}") from None
        if len(music_tokens) != len(self.priors):
            raise ValueError(f"need one token tensor per prior ({len(self.priors)}), got {len(music_tokens)}")
        device = self.priors[0].prior.embed_tokens.weight.device
        tokens = [torch.as_tensor(t, device=device).long() for t in music_tokens]
        batch = max(t.shape[0] for t in tokens)
        tokens = [t.expand(batch, -1).contiguous() if t.shape[0] == 1 else t for t in tokens]
        if any(t.dim() != 2 or t.shape[0] != batch for t in tokens):
            raise ValueError("music tokens must be [batch, time] with one batch size for every level")
        for level, t in enumerate(tokens):
            if t.numel() and (t.min() < 0 or t.max() >= self.priors[level].music_vocab_size):
                raise ValueError(f"level {level} music tokens outside [0, {self.priors[level].music_vocab_size})")
        if len(labels) != len(self.priors):
            raise ValueError(f"need one label tensor per prior ({len(self.priors)}), got {len(labels)}")
        label_tensors = []
        for label in labels:
            label = torch.as_tensor(label, device=device).long()
            label = label.view(1, -1) if label.dim() == 1 else label
            label_tensors.append(label.expand(batch, -1) if label.shape[0] == 1 else label)
        for prior, label in zip(self.priors, label_tensors):
            _check_labels(prior, label, batch)
        return tokens, label_tensors, params


def _check_labels(prior: JukeboxPrior, labels: torch.Tensor, batch: int) -> None:
    """Labels must be [batch, 4 + max_nb_genres + lyrics] with ids the prior's embeddings know."""
    n_genres = prior.config.max_nb_genres
    if labels.dim() != 2 or labels.shape[0] != batch or labels.shape[1] < 4 + n_genres:
        raise ValueError(
            f"prior {prior.level} labels must be [{batch}, >= {4 + n_genres}], got {tuple(labels.shape)}"
        )
    lyrics = labels[:, 4 + n_genres :]
    if prior.lyric_len and lyrics.numel() and (lyrics.min() < 0 or lyrics.max() >= prior.config.lyric_vocab_size):
        raise ValueError(
            f"prior {prior.level} lyric ids outside [0, {prior.config.lyric_vocab_size}): the tokenizer's "
            f"n_genres must equal the model's max_nb_genres ({n_genres})"
        )
