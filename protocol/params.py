"""Generation controls of a request, validated at the boundary.

One frozen dataclass carries every per-request control, so a request never depends on state
left behind by an earlier one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from protocol.errors import DurationTooLong, InvalidArgument

#: The longest render a request may ask for unless the daemon is configured otherwise.
DEFAULT_MAX_DURATION_S = 300.0
#: Seeds are below this (a torch generator takes a 64-bit seed; Python's ints are unbounded).
SEED_LIMIT = 2**63


@dataclass(frozen=True)
class GenerationParams:
    """Per-request generation controls (defaults follow audiocraft's MusicGen)."""

    duration_s: float = 8.0
    # Sample among the k most likely codes; 0 disables the cut.
    top_k: int = 250
    # Nucleus sampling mass; 0 disables it (audiocraft's convention), 1 keeps everything.
    top_p: float = 0.0
    temperature: float = 1.0
    # Classifier-free guidance; 1 means no guidance (and no null-condition batch half).
    guidance_scale: float = 3.0
    # Same seed and settings give identical audio; absent, the daemon draws one below 1000000 (whole
    # in a Pd or Max number box, so it can be sent back as shown) and reports it in `started`.
    seed: int | None = None
    # Always take the most likely code (ignores top_k, top_p, temperature).
    greedy: bool = False
    # Long-form: each new window starts from the last (window - stride) seconds generated.
    extend_stride_s: float = 18.0

    def validate(self, *, max_duration_s: float = DEFAULT_MAX_DURATION_S) -> "GenerationParams":
        """Return self, or raise InvalidArgument naming the first bad field."""
        _finite("duration_s", self.duration_s)
        if self.duration_s <= 0:
            raise InvalidArgument(f"duration_s must be positive, got {self.duration_s}")
        if self.duration_s > max_duration_s:
            raise DurationTooLong(f"duration_s {self.duration_s} is over the maximum of {max_duration_s} s")
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 0:
            raise InvalidArgument(f"top_k must be an integer >= 0, got {self.top_k!r}")
        _finite("top_p", self.top_p)
        if not 0.0 <= self.top_p <= 1.0:
            raise InvalidArgument(f"top_p must be within [0, 1], got {self.top_p}")
        _finite("temperature", self.temperature)
        if not self.greedy and self.temperature <= 0:
            raise InvalidArgument(f"temperature must be > 0 when sampling, got {self.temperature} (use greedy instead)")
        _finite("guidance_scale", self.guidance_scale)
        if self.guidance_scale < 0:
            raise InvalidArgument(f"guidance_scale must be >= 0, got {self.guidance_scale}")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < SEED_LIMIT):
            raise InvalidArgument(f"seed must be an integer in [0, 2^63), got {self.seed!r}")
        _finite("extend_stride_s", self.extend_stride_s)
        if self.extend_stride_s <= 0:
            raise InvalidArgument(f"extend_stride_s must be positive, got {self.extend_stride_s}")
        return self


def _finite(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidArgument(f"{name} must be a finite number, got {value!r}")
