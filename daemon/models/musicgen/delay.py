"""MusicGen's codebook delay pattern.

Codebook k of a channel is predicted k steps late: step s writes frame `s - k` of codebook k
(position 0 of the sequence is the BOS column). Stereo checkpoints interleave the channels'
codebooks, and both codebooks of a pair share a delay.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch


def delays(num_codebooks: int, audio_channels: int) -> torch.Tensor:
    """Delay in steps of each decoder codebook, `[K]`."""
    return torch.arange(num_codebooks) // audio_channels


def delay_steps(num_codebooks: int, audio_channels: int) -> int:
    """Extra steps the pattern adds to a window: the largest delay."""
    return num_codebooks // audio_channels - 1


def frame_of_column(column: int, codebook_delays: torch.Tensor) -> torch.Tensor:
    """Frame index each codebook holds at sequence `column` (negative: still in the BOS ramp), `[K]`."""
    return column - 1 - codebook_delays


def forced_codebooks(column: int, prompt_frames: int, total_frames: int, codebook_delays: torch.Tensor) -> torch.Tensor:
    """`[K]` bool: the codebooks whose code at `column` the pattern fixes (BOS ramp, prompt, pad after the end)."""
    frames = frame_of_column(column, codebook_delays)
    return (frames < prompt_frames) | (frames >= total_frames)


def column_values(
    column: int,
    proposed: torch.Tensor,
    prompt: torch.Tensor | None,
    total_frames: int,
    codebook_delays: torch.Tensor,
    pad_token_id: int,
) -> torch.Tensor:
    """The codes that stand at `column`: prompt codes where the prompt reaches, pad in the BOS
    ramp and after the last frame, the proposed (sampled) codes elsewhere.

    `proposed` is `[B, K]`, `prompt` `[B, K, P]`; returns `[B, K]`.
    """
    frames = frame_of_column(column, codebook_delays).to(proposed.device)  # [K]
    values = proposed.clone()
    pad = (frames < 0) | (frames >= total_frames)
    values[:, pad] = pad_token_id
    if prompt is not None and prompt.shape[-1] > 0:
        in_prompt = (frames >= 0) & (frames < prompt.shape[-1])
        if in_prompt.any():
            rows = torch.nonzero(in_prompt)[:, 0]
            values[:, rows] = prompt[:, rows, frames[rows]]
    return values


def initial_columns(prompt: torch.Tensor | None, batch: int, num_codebooks: int, codebook_delays: torch.Tensor,
                    pad_token_id: int, device: torch.device) -> torch.Tensor:
    """The columns known before the first step: BOS and the prompt's, `[B, K, P + 1]`."""
    prompt_frames = 0 if prompt is None else prompt.shape[-1]
    empty = torch.full((batch, num_codebooks), pad_token_id, dtype=torch.long, device=device)
    # Columns up to P hold frames below P only, so every one of them is BOS ramp or prompt.
    cols = [column_values(c, empty, prompt, prompt_frames, codebook_delays, pad_token_id)
            for c in range(prompt_frames + 1)]
    return torch.stack(cols, dim=-1)


def undo_delay(sequence: torch.Tensor, codebook_delays: torch.Tensor, frames: int) -> torch.Tensor:
    """Frame-aligned codes `[B, K, frames]` from a delayed sequence `[B, K, L]` (BOS at column 0)."""
    return torch.stack([sequence[:, k, 1 + d : 1 + d + frames] for k, d in enumerate(codebook_delays.tolist())], dim=1)


@dataclass(frozen=True)
class WindowPattern:
    """The delay pattern laid over one window of `new_frames` after an optional prompt `[B, K, P]`.

    Step s of the window samples sequence column `P + 1 + s`; `inputs` are the columns known
    before step 0 (BOS and the prompt's), `steps` how many columns the window samples.
    """

    prompt: torch.Tensor | None
    codebook_delays: torch.Tensor
    prompt_frames: int
    total_frames: int
    steps: int
    inputs: torch.Tensor
    pad_token_id: int

    @classmethod
    def plan(cls, prompt: torch.Tensor | None, batch: int, num_codebooks: int, audio_channels: int, new_frames: int,
             pad_token_id: int, device: torch.device) -> "WindowPattern":
        codebook_delays = delays(num_codebooks, audio_channels)
        prompt_frames = 0 if prompt is None else prompt.shape[-1]
        return cls(prompt=prompt, codebook_delays=codebook_delays, prompt_frames=prompt_frames,
                   total_frames=prompt_frames + new_frames,
                   steps=new_frames + delay_steps(num_codebooks, audio_channels),
                   inputs=initial_columns(prompt, batch, num_codebooks, codebook_delays, pad_token_id, device),
                   pad_token_id=pad_token_id)

    def column(self, step: int, proposed: torch.Tensor, *, owned: bool = False) -> torch.Tensor:
        """The column step `step` writes, from the sampled codes `proposed` `[B, K]`: a tensor of its own,
        or `proposed` itself where `owned` (the caller gives it away: nothing else holds or writes it)
        and the pattern forces no codebook."""
        column = self.prompt_frames + 1 + step
        shortest, longest = self._delay_range
        if column - 1 - longest >= self.prompt_frames and column - 1 - shortest < self.total_frames:
            # Every codebook's frame is a new one (past the ramp and the prompt, before the end): the
            # sampled codes stand as they are, as column_values would leave them, without its ten calls
            # (and without the copy where they are the caller's to give: ~30 us a step with the
            # caches cold from the native step's weights).
            return proposed if owned else proposed.clone()
        return column_values(self.prompt_frames + 1 + step, proposed, self.prompt, self.total_frames,
                             self.codebook_delays, self.pad_token_id)

    @functools.cached_property
    def _delay_range(self) -> tuple[int, int]:
        """The smallest and the largest codebook delay, as ints."""
        return int(self.codebook_delays.min()), int(self.codebook_delays.max())

    def forced(self, step: int) -> torch.Tensor:
        """`[K]` bool: the codebooks whose code at step `step` the pattern fixes, whatever was sampled."""
        return forced_codebooks(self.prompt_frames + 1 + step, self.prompt_frames, self.total_frames,
                                self.codebook_delays)
