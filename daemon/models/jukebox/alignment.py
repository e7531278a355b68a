"""Jukebox's lyric alignment, window by window as the top level is sampled.

What OpenAI Jukebox's `get_alignment` computes (and transformers 4.40.2's port of it would, its bugs
fixed: tests/fixtures/jukebox-tiny/make/make_align.py lists them): for every top-level window (the
sampling windows, `hop_fraction[0] * n_ctx` apart, the last one ending at the piece's end; a piece
shorter than a window zero-padded to one), one teacher-forced forward of the top prior, and the
attention of the alignment layer's alignment head from the window's music positions over the
window's lyric tokens, placed at the lyric indices that window saw. Where windows overlap, a cell
keeps the earliest window's value (the reference writes the windows last to first).

A row (top-level token) is final once no later window covers it, so `LyricAligner` hands out final
rows after each window: `n_ctx - hop` tokens behind the sampling, and every row by the top level's end.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from .config import CROSS, PRIME, layer_attention
from .sampler import window_starts

if TYPE_CHECKING:
    from .prior import JukeboxPrior


@dataclass(frozen=True)
class AlignedRows:
    """Rows [start, end) of the alignment (top-level tokens), final: `values` [B, end - start, C] is
    the attention on the full lyrics' tokens `columns` [C] (every other column of those rows is 0)."""

    start: int
    end: int
    columns: np.ndarray
    values: np.ndarray


def alignment_layer_head(prior: JukeboxPrior, layer: int | None = None, head: int | None = None) -> tuple[int, int]:
    """The top prior's alignment layer and head (the config's `alignment_layer` / `alignment_head`
    unless given); ValueError when the model cannot align lyrics or they are not a lyric layer's."""
    config = prior.config
    if prior.level != 0 or prior.lyric_len == 0:
        raise ValueError("this Jukebox model is not conditioned on lyrics (its top prior reads no lyric tokens): "
                         "it has no lyric alignment")
    layer = config.alignment_layer if layer is None else layer
    head = config.alignment_head if head is None else head
    if not 0 <= layer < config.num_layers:
        raise ValueError(f"alignment layer {layer} is outside the top prior's {config.num_layers} layers "
                         "(set alignment_layer)")
    if not 0 <= head < config.n_heads:
        raise ValueError(f"alignment head {head} is outside the top prior's {config.n_heads} heads (set alignment_head)")
    kind = layer_attention(config.attention_pattern, layer)
    if kind not in (PRIME, CROSS):
        raise ValueError(f"alignment layer {layer} is a {kind} layer: it does not attend to the lyrics "
                         f"(set alignment_layer to a {PRIME} or {CROSS} layer)")
    return layer, head


class LyricAligner:
    """Alignment rows of a piece's top level, computed as its windows are sampled.

    labels [B, 4 + n_genres + n_lyrics] (the top prior's); `total_tokens` the piece's top-level
    tokens, `total_length` and `offset` in samples, `hop_fraction` the top level's.
    """

    def __init__(self, prior: JukeboxPrior, labels: torch.Tensor, *, total_tokens: int, total_length: int,
                 offset: int, hop_fraction: float, layer: int, head: int) -> None:
        self.prior = prior
        self.labels = labels
        self.total_tokens = total_tokens
        self.total_length = total_length
        self.offset = offset
        self.layer, self.head = layer, head
        n_ctx = prior.n_ctx
        hop = max(1, int(hop_fraction * n_ctx))
        self.starts = window_starts(total_tokens, n_ctx, hop) if total_tokens >= n_ctx else [0]
        self._next = 0  # the next window to compute
        self._final_rows = 0  # rows handed out
        # computed windows that still cover rows not handed out: (start, probs [B, n_ctx, nb], indices per row)
        self._pending: list[tuple[int, np.ndarray, list[list[int]]]] = []

    @property
    def done(self) -> bool:
        return self._final_rows >= self.total_tokens

    @torch.no_grad()
    def advance(self, top_tokens: torch.Tensor) -> AlignedRows | None:
        """Compute every window whose tokens top_tokens [B, have] hold; the rows that became final."""
        n_ctx = self.prior.n_ctx
        have = top_tokens.shape[1]
        while self._next < len(self.starts):
            start = self.starts[self._next]
            if min(start + n_ctx, self.total_tokens) > have:
                break
            window = top_tokens[:, start : start + n_ctx]
            if window.shape[1] < n_ctx:  # a piece shorter than a window: zero-padded, as the reference
                window = torch.cat([window, window.new_zeros(window.shape[0], n_ctx - window.shape[1])], dim=1)
            metadata = self.prior.window_metadata(self.labels, start, self.total_length, self.offset)
            probs = self.prior.lyric_attention(window, metadata, self.layer, self.head).cpu().numpy()
            indices = self.prior.window_lyric_indices(self.labels, start, self.total_length, self.offset)
            self._pending.append((start, probs, indices))
            self._next += 1
        final = self.starts[self._next] if self._next < len(self.starts) else self.total_tokens
        final = min(final, self.total_tokens)
        if final <= self._final_rows:
            return None
        rows = self._combine(self._final_rows, final)
        self._final_rows = final
        self._pending = [w for w in self._pending if w[0] + n_ctx > final]
        return rows

    def _combine(self, first: int, end: int) -> AlignedRows:
        """Rows [first, end): each cell from the earliest window that covers it."""
        n_ctx = self.prior.n_ctx
        covering = [w for w in self._pending if w[0] < end and w[0] + n_ctx > first]
        columns = np.unique([i for _, _, indices in covering for row in indices for i in row if i >= 0])
        batch = self.labels.shape[0]
        values = np.zeros((batch, end - first, len(columns)), dtype=np.float32)
        for start, probs, indices in reversed(covering):  # latest first: earlier windows overwrite
            lo, hi = max(first, start), min(end, start + n_ctx)
            for item in range(batch):
                index = np.asarray(indices[item])
                valid = index >= 0
                block = values[item]
                block[lo - first : hi - first, np.searchsorted(columns, index[valid])] = probs[item, lo - start : hi - start][:, valid]
        return AlignedRows(first, end, columns.astype(np.int64), values)


def full_alignment(rows: Sequence[AlignedRows], total_tokens: int, n_lyrics: int, batch: int) -> list[np.ndarray]:
    """The reference's result from the rows: per sample, float32 [total_tokens, n_lyrics]."""
    out = np.zeros((batch, total_tokens, n_lyrics), dtype=np.float32)
    for part in rows:
        out[:, part.start : part.end][:, :, part.columns] = part.values
    return list(out)
