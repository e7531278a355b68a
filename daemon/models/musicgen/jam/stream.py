"""The jam's endless column loop: one MusicGen window after another, without a gap.

A window runs until it holds `shape.window_frames` frames; the next one starts from the last
`shape.context_frames` of them (as long-form does, audiocraft's extend stride). Starting a window
means teacher-forcing its context into a fresh cache, which on a CPU is seconds of compute, so it
is never done at the slide: the next window's cache (the *shadow*) is opened while the current
one still runs, and its context columns are fed in small groups (`decoder.extend`) as their frames
are generated, in the jam's idle time (it runs a bounded lead ahead of its listener) or, when the
slide comes near, between steps. The slide itself then costs one group of one column.

Changes apply between two steps: new prompts swap the running cache's cross-attention keys and
values (`decoder.set_condition`), sampling controls apply to the next draw. Every step feeds
the column sampled last and then samples the next, so the next column's scores are computed
under the new conditioning: from the frame reported as applied on, every code is the new one's.

Everything is a function of the frames, never of the timing, so a run can be reproduced exactly:
the shadow's groups are fixed by the window's geometry, each group is fed under the prompts that
were in force when its last frame was generated, and a change waiting for a frame (`at_frame`)
applies at that frame whatever the clock says. `state()` captures the whole of it.
"""

from __future__ import annotations

import dataclasses
import logging
from contextlib import ExitStack
from dataclasses import dataclass

import numpy as np
import torch

from daemon.audio.types import AudioChunk
from daemon.models.musicgen.delay import WindowPattern, delay_steps, delays, initial_columns
from daemon.models.musicgen.jam.decoding import JamDecoder
from daemon.models.musicgen.jam.prompts import PromptEncoder, WeightedPrompts
from daemon.models.musicgen.jam.types import Change, JamSampling, JamShape, JamState, WindowState
from daemon.models.musicgen.kv_cache import KVCache
from daemon.models.musicgen.loader import MusicgenBundle
from daemon.models.musicgen.sampling import apply_guidance, sample_next
from daemon.models.musicgen.streaming_codec import CodecStream, MusicgenCodec, StreamSettings
from daemon.seeds import seeded_rng

log = logging.getLogger(__name__)

#: A jam window's delay pattern has no end: frames this far out are never reached.
_NO_END_FRAMES = 1 << 40


@dataclass
class _Window:
    """One pass of the model: its cache and the delayed columns it holds (`sequence[..., :columns]`)."""

    start_frame: int  # the jam's frame at the window's frame 0
    context_frames: int
    cache: KVCache
    closer: ExitStack
    sequence: torch.Tensor  # [1, K, capacity]
    prompts: WeightedPrompts  # whose keys and values its cross-attention holds
    columns: int = 0  # columns written
    fed: int = 0  # columns fed to the cache: its filled slots
    logits: torch.Tensor | None = None  # [N, K, V] scores for the column after the last fed one
    logits_prompts: WeightedPrompts | None = None  # the prompts those scores were computed under
    pattern: WindowPattern | None = None  # set once the window samples


class JamStream:
    """One jam's loop on a loaded model's decoder; not thread-safe (the jam's own thread drives it)."""

    def __init__(self, decoder: JamDecoder, bundle: MusicgenBundle, codec: MusicgenCodec, encoder: PromptEncoder,
                 shape: JamShape, *, prompts: WeightedPrompts, sampling: JamSampling, seed: int,
                 stream_settings: StreamSettings) -> None:
        self.decoder = decoder
        self.bundle = bundle
        self.encoder = encoder
        self.shape = shape.validate(bundle.window_frames)
        self.stream_settings = stream_settings
        self.sampling = sampling
        self.prompts = prompts
        self._params = sampling.params()
        self.seed: int | None = seed  # only reported: the generator's state is what samples
        self._rng = seeded_rng(seed, bundle.device)
        # An endless codec stream: a slide is invisible to it, it only ever sees the next frames.
        self._codec = CodecStream(codec, stream_settings, total_frames=None)
        self._delays = delays(bundle.num_codebooks, bundle.audio_channels)
        self._max_delay = delay_steps(bundle.num_codebooks, bundle.audio_channels)
        self._pending: list[Change] = []
        # Prompts by the frame they apply from: what the next window's context groups are fed under.
        self._history: list[tuple[int, WeightedPrompts]] = [(0, prompts)]
        self._recent = torch.zeros((1, bundle.num_codebooks, 0), dtype=torch.long, device=bundle.device)
        self.frames = 0  # frames whose every codebook is generated
        self._chunks = 0
        self._shadow: _Window | None = None
        self._window = self._first_window()

    # -- what the jam's job uses --------------------------------------------------------------

    @property
    def sample_rate(self) -> int:
        return self.bundle.sample_rate

    @property
    def emitted_samples(self) -> int:
        """Samples handed out as blocks so far."""
        return self._codec.emitted_samples

    @property
    def generated_samples(self) -> int:
        """Samples whose codes exist (the codec holds a few frames back for its lookahead)."""
        return self.frames * self.bundle.hop_length

    @property
    def slides(self) -> int:
        """Windows started after the first (the start frame of the current one, in windows)."""
        return self._slides

    def cancel_pending(self) -> list[object]:
        """Drop the changes still waiting for their frame; their tokens (none for a change restored
        from a snapshot: no request of this jam's waits for it)."""
        tokens = [change.token for change in self._pending if change.token is not None]
        self._pending = []
        return tokens

    def submit(self, change: Change) -> None:
        """Queue a change; `step` applies it at its frame (`at_frame`) or the next one. Its token is
        handed back when it applies; a change without one (restored from a snapshot) is only logged."""
        self._pending.append(change)

    @torch.inference_mode()
    def step(self) -> tuple[list[AudioChunk], list[tuple[object, int]]]:
        """One column: apply due changes, feed the last column, sample the next; slide at the window's
        end. Returns the audio blocks now final and `(token, frame)` of each change applied."""
        window = self._window
        applied = self._apply_due(window)
        if window.fed < window.columns or window.logits_prompts != self.prompts:
            # Feed the column sampled last (or, at a window's start after a change, its last context
            # column again), so the next column's scores come from the conditioning now in force.
            slot = window.fed if window.fed < window.columns else window.fed - 1
            window.logits = self.decoder.step(window.cache, window.sequence[..., slot], slot)
            window.fed = slot + 1
            window.logits_prompts = self.prompts
        assert window.logits is not None and window.pattern is not None
        scores = apply_guidance(window.logits.reshape(-1, self.decoder.vocab), self.sampling.guidance_scale)
        proposed = sample_next(scores, self._params, self._rng).view(1, self.bundle.num_codebooks)
        column_index = window.columns
        window.sequence[..., column_index] = window.pattern.column(column_index - window.context_frames - 1, proposed)
        window.columns += 1
        blocks: list[AudioChunk] = []
        frame = column_index - 1 - self._max_delay  # the window's frame every codebook now holds
        if frame >= window.context_frames:
            codes = torch.stack([window.sequence[:, k, frame + 1 + d] for k, d in enumerate(self._delays.tolist())],
                                dim=1)[..., None]
            blocks = self._add_frame(codes)
        self._maintain_shadow(urgent_only=True)
        if frame + 1 == self.shape.window_frames:
            self._slide()
        return blocks, applied

    @torch.inference_mode()
    def background_work(self) -> bool:
        """Feed one due group of the next window's context, if any: for the jam's idle time."""
        return self._maintain_shadow(urgent_only=False)

    @torch.inference_mode()
    def finish(self) -> list[AudioChunk]:
        """The audio the codec still holds back, in blocks: the end of the jam (every frame generated is heard)."""
        return self._blocks(self._codec.finish())

    def close(self) -> None:
        """Free the caches now."""
        for window in (self._window, self._shadow):
            if window is not None:
                window.closer.close()
        self._shadow = None

    # -- changes --------------------------------------------------------------------------------

    def _apply_due(self, window: _Window) -> list[tuple[object, int]]:
        """Apply the changes due at the column about to be sampled (its codebook 0 is frame `frame`)."""
        frame = window.start_frame + window.columns - 1
        applied = []
        waiting = []
        for change in self._pending:
            if change.at_frame is not None and change.at_frame > frame:
                waiting.append(change)
                continue
            if change.prompts is not None and change.prompts != self.prompts:
                self._swap(window, change.prompts)
                self.prompts = change.prompts
                self._history.append((frame, change.prompts))
            if change.sampling:
                self.sampling = dataclasses.replace(self.sampling, **dict(change.sampling))
                self._params = self.sampling.params()
            if change.token is None:
                log.info("jam: a change waiting in its snapshot applied at frame %d", frame)
            else:
                applied.append((change.token, frame))
        self._pending = waiting
        return applied

    def _swap(self, window: _Window, prompts: WeightedPrompts) -> None:
        """Point a window's cross-attention at `prompts` (only its mask when just the weights moved)."""
        if window.prompts == prompts:
            return
        same_states = [t for t, _ in window.prompts.active] == [t for t, _ in prompts.active]
        self.decoder.set_condition(window.cache, self.encoder.conditioning(prompts), same_states=same_states)
        window.prompts = prompts

    def _prompts_at(self, frame: int) -> WeightedPrompts:
        """The prompts in force when `frame` was generated."""
        found = self._history[0][1]
        for first, prompts in self._history:
            if first > frame:
                break
            found = prompts
        return found

    # -- windows --------------------------------------------------------------------------------

    def _capacity(self) -> int:
        """Columns (and cache slots) of a window: every frame plus the delay ramp."""
        return self.shape.window_frames + 1 + self._max_delay

    @torch.inference_mode()
    def _open(self, start_frame: int, context_frames: int, prompts: WeightedPrompts) -> _Window:
        bundle = self.bundle
        cond = self.encoder.conditioning(prompts)
        closer = ExitStack()
        cache = closer.enter_context(self.decoder.open_cache(cond.hidden_states.shape[0], self._capacity()))
        self.decoder.set_condition(cache, cond)
        sequence = torch.full((1, bundle.num_codebooks, self._capacity()), bundle.pad_token_id, dtype=torch.long,
                              device=bundle.device)
        return _Window(start_frame, context_frames, cache, closer, sequence, prompts)

    def _first_window(self) -> _Window:
        """A window with no context: the BOS column, prefilled."""
        self._slides = 0
        window = self._open(0, 0, self.prompts)
        with torch.inference_mode():
            self._plan(window, None)
            window.sequence[..., :1] = window.pattern.inputs
            window.logits = self.decoder.prefill(window.cache, self.encoder.conditioning(self.prompts),
                                                 window.pattern.inputs)
        window.columns = window.fed = 1
        window.logits_prompts = self.prompts
        return window

    def _plan(self, window: _Window, context: torch.Tensor | None) -> None:
        bundle = self.bundle
        window.pattern = WindowPattern.plan(context, 1, bundle.num_codebooks, bundle.audio_channels, _NO_END_FRAMES,
                                            bundle.pad_token_id, bundle.device)

    def _shadow_start(self) -> int:
        """The jam's frame where the next window's context starts."""
        return self._window.start_frame + self.shape.window_frames - self.shape.context_frames

    def _next_group(self, shadow: _Window) -> tuple[int, int]:
        """Columns [a, b) of the shadow's next group. Groups are fixed by the geometry alone: the
        last holds only the last context column (the only one fed at the slide), the first the rest."""
        total = self.shape.context_frames + 1
        g = self.shape.group_columns
        last = total - 1
        if shadow.fed >= last:
            return shadow.fed, total
        first_size = last % g or g
        end = first_size if shadow.fed == 0 else shadow.fed + g
        return shadow.fed, min(end, last)

    def _maintain_shadow(self, *, urgent_only: bool) -> bool:
        """Open the next window's cache when its first frames exist, feed it one due group (always
        when not `urgent_only`; else only when the slide is too close to wait for idle time)."""
        start = self._shadow_start()
        if self._shadow is None:
            if self.frames < start + 1:
                return False
            self._shadow = self._open(start, self.shape.context_frames, self._prompts_at(start))
        shadow = self._shadow
        a, b = self._next_group(shadow)
        if b > self.shape.context_frames or self.frames < start + b - 1:
            return False  # the last column waits for the slide; others for their frames
        if urgent_only:
            steps_left = self._capacity() - self._window.columns
            groups_left = -(-(self.shape.context_frames - a) // self.shape.group_columns) + 1
            if steps_left > groups_left + 1:
                return False
        self._feed_group(shadow, a, b)
        return True

    def _feed_group(self, shadow: _Window, a: int, b: int) -> None:
        """Teacher-force the shadow's context columns [a, b) in one pass, under the prompts in force
        when the last of their frames was generated."""
        self._swap(shadow, self._prompts_at(shadow.start_frame + b - 2))
        frames = b - 1  # column b - 1 holds frames up to b - 2 of the window
        context = self._frames_from(shadow.start_frame, frames) if frames > 0 else None
        columns = initial_columns(context, 1, self.bundle.num_codebooks, self._delays, self.bundle.pad_token_id,
                                  self.bundle.device)[..., a:b]
        shadow.sequence[..., a:b] = columns
        logits = self.decoder.extend(shadow.cache, columns, a)  # [N, T, K, V]
        shadow.logits, shadow.logits_prompts = logits[:, -1], shadow.prompts
        shadow.columns = shadow.fed = b

    def _slide(self) -> None:
        """Continue in the shadow: feed what is left of its context, then drop the full window."""
        if self._shadow is None:
            self._shadow = self._open(self._shadow_start(), self.shape.context_frames,
                                      self._prompts_at(self._shadow_start()))
        shadow = self._shadow
        while shadow.fed < self.shape.context_frames + 1:
            self._feed_group(shadow, *self._next_group(shadow))
        self._plan(shadow, self._frames_from(shadow.start_frame, shadow.context_frames))
        assert shadow.pattern is not None and torch.equal(shadow.pattern.inputs, shadow.sequence[..., :shadow.columns])
        self._swap(shadow, self.prompts)  # its scores are recomputed at the next step if they were older
        self._window.closer.close()
        self._window, self._shadow = shadow, None
        self._slides += 1
        # Prompts before the new window's start are never asked for again.
        while len(self._history) > 1 and self._history[1][0] <= shadow.start_frame:
            self._history.pop(0)
        log.debug("jam slid to a window at frame %d (%d frames of context)", shadow.start_frame,
                  shadow.context_frames)

    # -- frames and audio -------------------------------------------------------------------------

    def _frames_from(self, first: int, count: int) -> torch.Tensor:
        """Codes `[1, K, count]` of the jam's frames first .. first + count."""
        recent_first = self.frames - self._recent.shape[-1]
        assert first >= recent_first and first + count <= self.frames, (first, count, recent_first, self.frames)
        return self._recent[..., first - recent_first:first - recent_first + count]

    def _add_frame(self, codes: torch.Tensor) -> list[AudioChunk]:
        self._recent = torch.cat([self._recent, codes], dim=-1)[..., -self.shape.window_frames:]
        self.frames += 1
        return self._blocks(self._codec.push(codes))

    def _blocks(self, audio_blocks: list[np.ndarray]) -> list[AudioChunk]:
        chunks: list[AudioChunk] = []
        for audio in audio_blocks:
            offset = self._codec.emitted_samples - sum(b.shape[1] for b in audio_blocks[len(chunks):])
            chunks.append(AudioChunk(self._chunks, offset, audio, self.bundle.sample_rate))
            self._chunks += 1
        return chunks

    # -- state ------------------------------------------------------------------------------------

    @torch.inference_mode()
    def state(self) -> JamState:
        """A copy of everything the next samples depend on (between two steps)."""
        return JamState(
            shape=self.shape, stream=self.stream_settings, sampling=self.sampling, prompts=self.prompts,
            history=list(self._history), frames=self.frames, recent=self._recent.clone(),
            rng=self._rng.get_state(), codec=self._codec.snapshot(), window=_window_state(self._window),
            shadow=None if self._shadow is None else _window_state(self._shadow),
            # A change waiting for its frame shapes the samples after it as much as the rest does.
            pending=[dataclasses.replace(change, token=None) for change in self._pending], seed=self.seed,
        )

    @classmethod
    def restore(cls, decoder: JamDecoder, bundle: MusicgenBundle, codec: MusicgenCodec, encoder: PromptEncoder,
                state: JamState, *, chunks: int = 0) -> "JamStream":
        """A jam that goes on exactly as the one `state` was taken from."""
        stream = cls.__new__(cls)
        stream.decoder, stream.bundle, stream.encoder = decoder, bundle, encoder
        stream.shape = state.shape.validate(bundle.window_frames)
        stream.stream_settings = state.stream
        stream.sampling, stream.prompts = state.sampling, state.prompts
        stream._params = state.sampling.params()
        stream.seed = state.seed
        stream._rng = seeded_rng(0, bundle.device)
        stream._rng.set_state(state.rng)
        stream._codec = CodecStream.restore(codec, state.codec)
        stream._delays = delays(bundle.num_codebooks, bundle.audio_channels)
        stream._max_delay = delay_steps(bundle.num_codebooks, bundle.audio_channels)
        stream._pending = list(state.pending)
        stream._history = list(state.history)
        stream._recent = state.recent.to(bundle.device).clone()
        stream.frames = state.frames
        stream._chunks = chunks
        stream._slides = 0
        stream._window = stream._restore_window(state.window, sampling=True)
        stream._shadow = None if state.shadow is None else stream._restore_window(state.shadow, sampling=False)
        return stream

    @torch.inference_mode()
    def _restore_window(self, saved: WindowState, *, sampling: bool) -> _Window:
        window = self._open(saved.start_frame, saved.context_frames, saved.prompts)
        window.sequence[..., :saved.columns] = saved.sequence.to(window.sequence.device)
        window.columns, window.fed = saved.columns, saved.fed
        window.logits = None if saved.logits is None else saved.logits.to(self.bundle.device).clone()
        window.logits_prompts = saved.logits_prompts
        cache = window.cache
        for name in ("keys", "values", "key_scales", "value_scales"):
            layers = getattr(cache, name)
            rows = _slot_rows(cache, name, saved.fed)
            for index, tensor in enumerate(layers):
                slots = saved.slots.get(f"{name}.{index}")
                if slots is None or slots.shape[:2] != tensor.shape[:2] or slots.shape[3:] != tensor.shape[3:] \
                        or slots.shape[2] != rows:
                    raise ValueError(f"the saved cache has no {name} for layer {index} of this decoder's shape")
                if slots.dtype != tensor.dtype:  # converted, they would not be the bits the steps made
                    raise ValueError(f"the saved cache's {name} are {slots.dtype}, this decoder's {tensor.dtype}")
                tensor[:, :, :rows] = slots.to(tensor.device)
        if sampling:
            context = self._frames_from(saved.start_frame, saved.context_frames) if saved.context_frames else None
            self._plan(window, context)
        return window


def _slot_rows(cache: KVCache, name: str, fed: int) -> int:
    """Rows of `cache`'s `name` tensors that hold its first `fed` positions (the 4-bit layout's int8
    head takes two rows a position, and two float16 entries of its scales: kv_cache.py)."""
    del name  # the slots' rows and the scales' entries alike
    return cache.slot_rows(fed)


def _window_state(window: _Window) -> WindowState:
    cache = window.cache
    slots = {}
    for name in ("keys", "values", "key_scales", "value_scales"):
        for index, tensor in enumerate(getattr(cache, name)):
            slots[f"{name}.{index}"] = tensor[:, :, :_slot_rows(cache, name, window.fed)].clone()
    return WindowState(
        start_frame=window.start_frame, context_frames=window.context_frames, columns=window.columns, fed=window.fed,
        sequence=window.sequence[..., :window.columns].clone(), prompts=window.prompts,
        logits_prompts=window.logits_prompts, logits=None if window.logits is None else window.logits.clone(),
        slots=slots,
    )
