"""Generation longer than the model's window, as audiocraft's `extend_stride` does it: each new
window starts from the last (window - stride) frames of everything so far.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from daemon.models.musicgen.delay import delay_steps, delays, initial_columns, undo_delay
from daemon.models.musicgen.loader import MusicgenBundle
from protocol.errors import InvalidArgument


@dataclass(frozen=True)
class Window:
    """One pass of the model: `prompt_frames` of context continued by `new_frames`."""

    index: int
    prompt_frames: int
    new_frames: int
    # Where the window's first (prompt) frame sits relative to the start of the new audio.
    start_frame: int


def plan_windows(new_frames: int, prompt_frames: int, window_frames: int, stride_frames: int) -> list[Window]:
    """Windows covering `new_frames` after a prompt of `prompt_frames`."""
    if new_frames <= 0:
        raise InvalidArgument("nothing to generate: the duration is shorter than one frame")
    if prompt_frames >= window_frames:
        raise InvalidArgument(f"the audio prompt ({prompt_frames} frames) does not fit the model window ({window_frames} frames)")
    if not 0 < stride_frames < window_frames:
        raise InvalidArgument(f"extend stride must be between 0 and the window ({window_frames} frames), got {stride_frames}")
    windows: list[Window] = []
    done, context = 0, prompt_frames
    while done < new_frames:
        new = min(window_frames - context, new_frames - done)
        windows.append(Window(len(windows), context, new, done - context))
        done += new
        # The next window keeps the last (window - stride) frames of this one's whole sequence.
        context = min(window_frames - stride_frames, context + new)
    return windows


def steps_for(windows: list[Window], bundle: MusicgenBundle) -> int:
    """Decoder steps a render takes: each window pays its frames plus the delay ramp."""
    extra = delay_steps(bundle.num_codebooks, bundle.audio_channels)
    return sum(w.new_frames + extra for w in windows)


#: Produces a window's new columns; see decode_loop.iter_columns for the contract.
ColumnFn = Callable[..., Iterator[torch.Tensor]]


def run_windows(
    bundle: MusicgenBundle,
    windows: list[Window],
    *,
    prompt: torch.Tensor | None,
    batch: int,
    columns_for: Callable[[Window, torch.Tensor | None], Iterator[torch.Tensor]],
    on_step: Callable[[], None] | None = None,
    on_window: Callable[[Window, torch.Tensor | None, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """Run every window; returns frame-aligned codes `[B, K, P0 + N]`, the prompt's included.

    `columns_for(window, window_prompt)` yields the window's new columns; `on_window` sees each
    finished window with its prompt codes and its new codes.
    """
    codebook_delays = delays(bundle.num_codebooks, bundle.audio_channels)
    codes = prompt if prompt is not None else torch.zeros((batch, bundle.num_codebooks, 0), dtype=torch.long,
                                                           device=bundle.device)
    for window in windows:
        window_prompt = codes[..., codes.shape[-1] - window.prompt_frames:] if window.prompt_frames else None
        head = initial_columns(window_prompt, batch, bundle.num_codebooks, codebook_delays, bundle.pad_token_id,
                               bundle.device)
        columns = [head]
        for column in columns_for(window, window_prompt):
            columns.append(column[..., None])
            if on_step is not None:
                on_step()
        sequence = torch.cat(columns, dim=-1)
        aligned = undo_delay(sequence, codebook_delays, window.prompt_frames + window.new_frames)
        new_codes = aligned[..., window.prompt_frames:]
        if on_window is not None:
            on_window(window, window_prompt, new_codes)
        codes = torch.cat([codes, new_codes], dim=-1)
    return codes
