"""Codes to audio chunks while generation runs: frames leave the delay pattern as soon as every
codebook has them, window after window, and go straight to the incremental codec decode.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing

import torch

from daemon.audio.types import AudioChunk
from daemon.models.musicgen.delay import delay_steps, delays, initial_columns
from daemon.models.musicgen.loader import MusicgenBundle
from daemon.models.musicgen.longform import Window
from daemon.models.musicgen.streaming_codec import CodecStream, MusicgenCodec, StreamSettings


def iter_frames(
    bundle: MusicgenBundle,
    windows: list[Window],
    *,
    prompt: torch.Tensor | None,
    batch: int,
    columns_for: Callable[[Window, torch.Tensor | None], Iterator[torch.Tensor]],
    on_step: Callable[[], None] | None = None,
    on_window: Callable[[Window, torch.Tensor | None, torch.Tensor], None] | None = None,
) -> Iterator[torch.Tensor]:
    """Yield new frame-aligned codes `[B, K, n]` the moment all K codebooks hold them.

    Each window after the first continues from the last `window.prompt_frames` frames so far;
    `columns_for(window, window_prompt)` yields its columns, and `on_window` sees each finished
    window with its prompt and new codes. Stopping the iteration closes the column producer.
    """
    num_codebooks = bundle.num_codebooks
    codebook_delays = delays(num_codebooks, bundle.audio_channels).tolist()
    max_delay = delay_steps(num_codebooks, bundle.audio_channels)
    # Only the last window's worth of codes is ever needed as context, so memory stays bounded.
    recent = prompt if prompt is not None else torch.zeros((batch, num_codebooks, 0), dtype=torch.long,
                                                           device=bundle.device)
    for window in windows:
        window_prompt = recent[..., recent.shape[-1] - window.prompt_frames:] if window.prompt_frames else None
        head = initial_columns(window_prompt, batch, num_codebooks, torch.tensor(codebook_delays),
                               bundle.pad_token_id, bundle.device)
        last_frame = window.prompt_frames + window.new_frames
        # Laid out column after column ([T, B, K] memory, seen as [B, K, T]): a step's column is one row.
        columns_in = _Columns(head.shape[-1] + window.new_frames + max_delay, batch, num_codebooks, bundle.device)
        sequence = columns_in.sequence
        sequence[..., :head.shape[-1]] = head
        filled, ready = head.shape[-1], window.prompt_frames
        frame_at = _frame_reader(sequence, codebook_delays)
        pieces = []
        with closing(columns_for(window, window_prompt)) as columns:
            for column in columns:
                columns_in.write(filled, column)
                filled += 1
                if on_step is not None:
                    on_step()
                # Complete once the largest delay has it.
                complete = min(filled - 1 - max_delay, last_frame)
                if complete > ready:
                    if complete == ready + 1:
                        fresh = frame_at(ready)
                    else:
                        fresh = torch.stack([sequence[:, k, 1 + ready + d:1 + complete + d]
                                             for k, d in enumerate(codebook_delays)], dim=1)
                    pieces.append(fresh)
                    ready = complete
                    yield fresh
        if on_window is not None:
            on_window(window, window_prompt, torch.cat(pieces, dim=-1))
        recent = torch.cat([recent, *pieces], dim=-1)[..., -bundle.window_frames:]


class _Columns:
    """A window's delayed sequence `[B, K, T]` (`sequence`), its columns rows of `[T, B, K]` memory: `write(c, column)`
    copies a contiguous int64 CPU column `[B, K]` as one row (a memmove: torch's copy_ into a column, or numpy's
    assignment, cost a step ~50 us cold after its weights streamed through the caches); any other goes through
    torch's indexing (which also raises for a column past the end)."""

    def __init__(self, length: int, batch: int, books: int, device: torch.device) -> None:
        rows = torch.empty((length, batch, books), dtype=torch.long, device=device)
        self.sequence = rows.permute(1, 2, 0)
        self._rows = rows  # owns the memory the addresses below point into
        self._length, self._elements = length, batch * books
        self._row_bytes = self._elements * rows.element_size()
        self._address = rows.data_ptr() if rows.is_cpu else None

    def write(self, index: int, column: torch.Tensor) -> None:
        if (self._address is not None and 0 <= index < self._length and column.dtype is torch.long and column.is_cpu
                and column.is_contiguous() and column.numel() == self._elements):
            ctypes.memmove(self._address + index * self._row_bytes, column.data_ptr(), self._row_bytes)
        else:
            self.sequence[..., index] = column


def _frame_reader(sequence: torch.Tensor, codebook_delays: list[int]) -> Callable[[int], torch.Tensor]:
    """`frame(f)`: frame f `[B, K, 1]` of `sequence` `[B, K, T]` (codebook k's frame f at column 1 + f + delay_k),
    without K slices and a stack (a step's one new frame). Where the delays step evenly from codebook to codebook
    (mono: delay_k = k), frame f is a strided view of `sequence`'s memory (written columns are never written again,
    so a view's codes stay the frame's), made with the next frames' (`ViewsAhead`); elsewhere one index_select."""
    steps = {b - a for a, b in zip(codebook_delays, codebook_delays[1:])}
    batch, books, length = sequence.shape
    along_batch, along_books, along_time = sequence.stride()
    if len(steps) <= 1:
        step = steps.pop() if steps else 0
        first = sequence.storage_offset() + (1 + codebook_delays[0]) * along_time
        # Frame f: (batch, books, 1) at first + f steps along time, codebook k's a delay step further each; `count`
        # frames' views from one (batch, books, count, 1).
        strides = (along_batch, along_books + step * along_time, along_time, 1)
        frames = ViewsAhead(lambda start, count: sequence.as_strided((batch, books, count, 1), strides,
                                                                     first + start * along_time).unbind(2),
                            length - 1 - codebook_delays[-1])
        return frames.__getitem__
    # Element (b, k) of frame f sits at diagonal[b, k] + f steps along time in `sequence`'s memory.
    diagonal = (torch.arange(batch, device=sequence.device)[:, None] * along_batch
                + torch.arange(books, device=sequence.device)[None, :] * along_books
                + (1 + torch.tensor(codebook_delays, device=sequence.device))[None, :] * along_time).view(-1)
    span = (batch - 1) * along_batch + (books - 1) * along_books + (length - 1) * along_time + 1
    flat = sequence.as_strided((span,), (1,), sequence.storage_offset())  # frames written later show through it
    return lambda frame: flat.index_select(0, diagonal + frame * along_time).view(batch, books, 1)


#: Views `ViewsAhead` makes at once.
VIEWS_AHEAD = 64


class ViewsAhead:
    """`views[i]`: view i of a run of views of one tensor (a window's frames), made `VIEWS_AHEAD` at a time
    by `make(start, count)` (views start.. start + count - 1, a torch call or two for all of them) for `i` below
    `end`. A step asks for the next view: one made on its own cost a step ~20-30 us of torch's indexing, cold
    after the step's weights streamed through the caches; a view made ahead sees what is written later."""

    def __init__(self, make: Callable[[int, int], Sequence[torch.Tensor]], end: int) -> None:
        self._make, self._end = make, end
        self._start = 0
        self._views: Sequence[torch.Tensor] = ()

    def __getitem__(self, index: int) -> torch.Tensor:
        offset = index - self._start
        if not 0 <= offset < len(self._views):
            if not 0 <= index < self._end:
                raise IndexError(f"view {index} of {self._end}")
            self._start, offset = index, 0
            self._views = self._make(index, min(VIEWS_AHEAD, self._end - index))
        return self._views[offset]


def run_windows(bundle: MusicgenBundle, windows: list[Window], *, prompt: torch.Tensor | None, batch: int,
                **hooks) -> torch.Tensor:
    """Every window at once: frame-aligned codes `[B, K, P0 + N]`, the prompt's first."""
    head = prompt if prompt is not None else torch.zeros((batch, bundle.num_codebooks, 0), dtype=torch.long,
                                                         device=bundle.device)
    return torch.cat([head, *iter_frames(bundle, windows, prompt=prompt, batch=batch, **hooks)], dim=-1)


def stream_chunks(
    codec: MusicgenCodec,
    frames: Iterator[torch.Tensor],
    *,
    prompt: torch.Tensor | None,
    new_frames: int,
    samples: int,
    start_sample: int,
    settings: StreamSettings,
    before_codec: Callable[[], None] | None = None,
) -> Iterator[AudioChunk]:
    """Audio chunks of one prompt's new frames `[1, K, n]` as they come; `samples` long in all,
    from `start_sample` of the decoded timeline (the audio prompt's end).

    The audio prompt's codes are the decoder's left context, as in a one-shot decode.
    `before_codec()` runs before each push that decodes (where a batched job waits its turn).
    """
    prompt_frames = 0 if prompt is None else prompt.shape[-1]
    decoder = CodecStream(codec, settings, total_frames=prompt_frames + new_frames, start_sample=start_sample)
    index, offset = 0, 0

    def chunks(blocks: list) -> Iterator[AudioChunk]:
        nonlocal index, offset
        for block in blocks:
            block = block[:, :samples - offset]
            if block.shape[1]:
                yield AudioChunk(index, offset, block, codec.sample_rate)
                index, offset = index + 1, offset + block.shape[1]

    if prompt is not None:
        yield from chunks(decoder.push(prompt[:1]))
    # Frames are held here until they complete a chunk, then pushed together: the codec decodes only
    # then (the same frames at the same steps), and a push a frame cost ~80 us a step (its slice, checks
    # and concatenation, each torch call cold after the decode step's weights streamed through the caches).
    held: list[torch.Tensor] = []
    count = 0
    with closing(frames):
        for fresh in frames:
            held.append(fresh)
            count += fresh.shape[-1]
            if decoder.decodes(count):
                if before_codec is not None:
                    before_codec()
                yield from chunks(decoder.push(_joined(held)))
                held, count = [], 0
    if held:  # the frames stopped before the last one (finish then says so)
        yield from chunks(decoder.push(_joined(held)))
    if before_codec is not None and not decoder.finished:
        before_codec()
    yield from chunks(decoder.finish())


def _joined(frames: list[torch.Tensor]) -> torch.Tensor:
    """The first prompt's codes `[1, K, n]` of consecutive frames `[B, K, n_i]`."""
    return frames[0][:1] if len(frames) == 1 else torch.cat(frames, dim=-1)[:1]
