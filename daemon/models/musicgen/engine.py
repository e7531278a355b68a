"""What a MusicGen backend decodes with: a decoder in the chosen engine mode, and with +draft a
second, quantised decoder beside it for speculative decoding. The pairing lives here, with the
caller; the decoders know nothing of each other.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import torch

from daemon.models.musicgen.conditioning import Conditioning
from daemon.models.musicgen.arena import SlotArena
from daemon.models.musicgen.decoder import MusicgenDecoder
from daemon.models.musicgen.loader import MusicgenBundle
from daemon.models.musicgen.loop import StopFn, decoder_columns
from daemon.models.musicgen.options import SPECULATIVE_LOOKAHEAD, EngineOptions
from daemon.models.musicgen.speculative import speculative_columns
from daemon.models.musicgen.weights import decoder_weights
from protocol.params import GenerationParams

log = logging.getLogger(__name__)


class MusicgenEngine:
    """riffd's streaming decode of one loaded checkpoint; `columns` is its entry point."""

    def __init__(self, bundle: MusicgenBundle, options: EngineOptions = EngineOptions()) -> None:
        self.bundle = bundle
        self.options = options.validate(bundle.device)
        self.decoder = MusicgenDecoder(decoder_weights(bundle.model, options), bundle.device, model_id=bundle.model_id)
        # +draft: a quantised decoder over the same checkpoint proposes columns for these weights to check.
        draft = options.draft_options(bundle.device) if options.draft else None
        self.draft = (MusicgenDecoder(decoder_weights(bundle.model, draft), bundle.device, model_id=bundle.model_id)
                      if draft is not None else None)

    @property
    def live_caches(self) -> int:
        """Windows whose cache is allocated right now (0 once every stream ended or was stopped)."""
        return self.decoder.live_caches

    @property
    def weight_bytes_per_step(self) -> int:
        return self.decoder.weights.bytes_per_step

    @property
    def window_positions(self) -> int:
        """Cache slots of a whole window (a long job's), which the slot arena and the warm-up size for."""
        from daemon.models.musicgen.handoff import cache_positions
        from daemon.models.musicgen.longform import Window

        return cache_positions(Window(index=0, prompt_frames=0, new_frames=self.bundle.window_frames, start_frame=0),
                               self.bundle)

    def open_arena(self, max_streams: int, max_bytes: int, *, graphs: bool | None = None) -> SlotArena | None:
        """The decoder's slot arena (arena.py) for `max_streams` guided streams (two rows each) of a whole
        window, as many of those rows as fit `max_bytes`; None where it cannot serve (logged)."""
        positions = self.window_positions
        rows = min(2 * max_streams, max_bytes // self.decoder.arena_row_bytes(positions) // 2 * 2)  # guided pairs
        if rows < 2:
            log.warning("no slot arena: one guided stream's rows (%.0f MiB) do not fit the batch's memory "
                        "(%.0f MiB)", 2 * self.decoder.arena_row_bytes(positions) / 2**20, max_bytes / 2**20)
            return None
        if rows < 2 * max_streams:
            log.warning("the slot arena holds %d rows, not %d: the batch's memory (%.0f MiB) bounds it; windows "
                        "past it step on their own", rows, 2 * max_streams, max_bytes / 2**20)
        return self.decoder.enable_arena(rows, positions, graphs=graphs)

    def columns(self, cond: Conditioning, prompt: torch.Tensor | None, new_frames: int, params: GenerationParams,
                rng: torch.Generator | None, should_stop: StopFn | None = None) -> Iterator[torch.Tensor]:
        """Yield each new sequence column `[B, K]` of a window; the same contract as `loop.reference_columns`."""
        if self.draft is not None:
            return speculative_columns(self.decoder, self.draft, self.bundle, cond, prompt, new_frames, params, rng,
                                       should_stop, SPECULATIVE_LOOKAHEAD)
        return decoder_columns(self.decoder, self.bundle, cond, prompt, new_frames, params, rng, should_stop)

    def warm_up(self, frames: int = 8, *, long_windows: bool = False) -> float:
        """A short generation, so the first request pays no lazy set-up; returns seconds. `long_windows`
        (the daemon's load): a compiled engine also compiles and captures the step of its longer cache
        shape (decoder.POSITION_BUCKET), which every job longer than ~5 s steps in, so the first such job
        does not stall for a compile (20-25 s on an H100)."""
        from daemon.models.musicgen.conditioning import build_conditioning
        from daemon.models.musicgen.decoder import POSITION_BUCKET
        from daemon.models.musicgen.loop import plan_window

        start = time.perf_counter()
        cond = build_conditioning(self.bundle, ["warm-up"], guidance_scale=3.0)
        params = GenerationParams(duration_s=frames / self.bundle.frame_rate, greedy=True)
        for _ in self.columns(cond, None, frames, params, None):
            pass
        if long_windows and self.decoder.compiled:
            pattern, first_slot = plan_window(self.bundle, cond, None, frames)
            column = torch.zeros((1, self.bundle.num_codebooks), dtype=torch.long, device=self.bundle.device)
            with self.decoder.open_cache(cond.hidden_states.shape[0], POSITION_BUCKET + 1) as cache:
                self.decoder.prefill(cache, cond, pattern.inputs)
                for position in range(first_slot, first_slot + 2):
                    self.decoder.step(cache, column, position)
        if self.decoder.native is not None:
            # A whole window's cache, twice (a long job's current window and the next one it warms),
            # faulted into huge pages now rather than when a job's first window opens (TTFA).
            self.decoder.reserve_caches(cond.hidden_states.shape[0], self.window_positions, 2)
        took = time.perf_counter() - start
        log.info("%s engine %s warmed up in %.2f s", self.bundle.model_id, self.options.name, took)
        return took
