"""What a jam is made of, as plain data: its window geometry, its sampling controls, a change to it,
and its saved state (`JamStream.state()`; `jam.state` writes it to a file)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from daemon.models.musicgen.jam.prompts import WeightedPrompts
from daemon.models.musicgen.streaming_codec import StreamSettings
from protocol.errors import InvalidArgument
from protocol.params import GenerationParams


@dataclass(frozen=True)
class JamShape:
    """A jam's windows, in codec frames."""

    # Frames one window holds, its context included, before the jam slides on to the next.
    window_frames: int
    # Frames of the jam's own music each later window starts from.
    context_frames: int
    # Context columns the next window's cache is fed in at a time: up to 8 rows (4 columns under
    # guidance) go through riffd's int8 matrix-vector kernel, which reads the weights once per 4 rows.
    group_columns: int = 4

    def validate(self, window_limit_frames: int) -> "JamShape":
        if not 0 < self.window_frames <= window_limit_frames:
            raise InvalidArgument(f"a jam window is 1 to {window_limit_frames} frames for this model, "
                                  f"got {self.window_frames}")
        if not 0 < self.context_frames < self.window_frames - self.group_columns:
            raise InvalidArgument(f"a jam's context ({self.context_frames} frames) must be shorter than its window "
                                  f"({self.window_frames} frames) by more than {self.group_columns}")
        if self.group_columns < 1:
            raise InvalidArgument(f"group_columns must be at least 1, got {self.group_columns}")
        return self


@dataclass(frozen=True)
class JamSampling:
    """The sampling controls a jam can change while it plays."""

    temperature: float = 1.0
    top_k: int = 250
    top_p: float = 0.0
    guidance_scale: float = 3.0

    def params(self) -> GenerationParams:
        return GenerationParams(duration_s=1.0, top_k=self.top_k, top_p=self.top_p, temperature=self.temperature,
                                guidance_scale=self.guidance_scale)


@dataclass(frozen=True)
class Change:
    """A change to a running jam; None and empty fields stay as they are."""

    prompts: WeightedPrompts | None = None
    sampling: tuple[tuple[str, float], ...] = ()
    # Apply when the loop reaches this frame (a frame generated already: at the next one).
    at_frame: int | None = None
    # Handed back with the frame the change applied at.
    token: object = field(default=None, compare=False)


@dataclass
class WindowState:
    """A window as saved: its geometry, columns, cache slots and scores."""

    start_frame: int
    context_frames: int
    columns: int
    fed: int
    sequence: torch.Tensor  # [1, K, columns]
    prompts: WeightedPrompts
    logits_prompts: WeightedPrompts | None
    logits: torch.Tensor | None
    # keys.L, values.L (and key_scales.L, value_scales.L) [N, H, fed, ...] (+kv4: KVCache.slot_rows(fed), the scales too)
    slots: dict[str, torch.Tensor]


@dataclass
class JamState:
    """Everything the jam's next samples depend on (`daemon.models.musicgen.jam.state` saves it)."""

    shape: JamShape
    stream: StreamSettings
    sampling: JamSampling
    prompts: WeightedPrompts
    history: list[tuple[int, WeightedPrompts]]
    frames: int
    recent: torch.Tensor  # [1, K, n] frames frames - n .. frames
    rng: torch.Tensor  # the sampling generator's state
    codec: dict[str, torch.Tensor]  # the codec stream's snapshot (CodecStream.snapshot)
    window: WindowState
    shadow: WindowState | None
    # Changes still waiting for their frame (`at_frame`) or the next step; tokens are not kept (they
    # belong to the requests of the jam the state was taken from).
    pending: list[Change] = field(default_factory=list)
    # The seed the jam was started with (its generator's state is `rng`); None from a snapshot that
    # predates saving it.
    seed: int | None = None
