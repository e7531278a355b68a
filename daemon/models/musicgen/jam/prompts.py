"""Weighted prompts as one cross-attention conditioning.

The blend happens in the cross-attention, not in the guided logits. Each prompt is encoded on
its own; their states are attended to side by side (one sequence), and prompt i's tokens get
log(w_i) added to their attention scores, which scales that prompt's share of the attention
mass by w_i (only the ratios of the weights matter). Why there:
- a step's cost does not grow with the prompts: one conditional row whatever their number. Blending
  guided logits (composable guidance) needs a batch row, and a self-attention cache, per prompt:
  late in a window, on this CPU, eight prompts' cache reads would cost more than the weights;
- changing the prompts or their weights never touches the self-attention cache (only the
  cross-attention keys and values, swapped between two steps), so a slider can move freely;
- one prompt of any weight is exactly the text conditioning a plain generate uses.
Averaging the encoder states themselves would be meaningless: prompts have different lengths and
their token positions do not line up.
"""

from __future__ import annotations

import collections
import math
import threading
from dataclasses import dataclass

import torch

from daemon.models.musicgen.conditioning import Conditioning, build_conditioning
from daemon.models.musicgen.loader import MusicgenBundle
from protocol.messages import check_weights

#: A jam is always run as a guided batch (conditional, null), so a guidance change never reshapes
#: its cache; this scale only makes build_conditioning add the null half.
_GUIDED = 3.0


@dataclass(frozen=True)
class WeightedPrompts:
    """Prompts with relative weights (>= 0, not all zero); one weight per prompt."""

    texts: tuple[str, ...]
    weights: tuple[float, ...]

    @classmethod
    def of(cls, texts: tuple[str, ...], weights: tuple[float, ...] = ()) -> "WeightedPrompts":
        """Checked prompts; no weights means 1 each."""
        check_weights(texts, weights)
        return cls(tuple(texts), tuple(float(w) for w in weights) if weights else (1.0,) * len(texts))

    @property
    def active(self) -> list[tuple[str, float]]:
        """(text, weight) of the prompts that count (weight > 0)."""
        return [(text, weight) for text, weight in zip(self.texts, self.weights) if weight > 0]

    def describe(self) -> str:
        return " + ".join(f"{text!r}" if len(self.texts) == 1 else f"{weight:g} x {text!r}"
                          for text, weight in zip(self.texts, self.weights))


class PromptEncoder:
    """Conditioning for weighted prompts, each prompt's encoder states computed once (LRU)."""

    def __init__(self, bundle: MusicgenBundle, *, cached_prompts: int = 32) -> None:
        self.bundle = bundle
        self._cached_prompts = cached_prompts
        self._encoded: collections.OrderedDict[str, Conditioning] = collections.OrderedDict()
        self._lock = threading.Lock()  # the jams of one model share it, each on its own thread

    def conditioning(self, prompts: WeightedPrompts) -> Conditioning:
        """`[2, S, H]` states (conditional, null) and, for several prompts, the log-weight bias `[2, S]`."""
        active = prompts.active
        if len(active) == 1:
            return self._encode(active[0][0])
        parts = [self._encode(text) for text, _ in active]
        largest = max(weight for _, weight in active)
        states = torch.cat([part.hidden_states[:1] for part in parts], dim=1)  # [1, S, H]
        mask = torch.cat([part.attention_mask[:1] for part in parts], dim=1)  # [1, S]
        # Relative to the largest weight, so the strongest prompt's tokens keep their scores as they are.
        bias = torch.cat([torch.full((1, part.hidden_states.shape[1]), math.log(weight / largest))
                          for part, (_, weight) in zip(parts, active)], dim=1).to(states.device)
        return Conditioning(hidden_states=torch.cat([states, torch.zeros_like(states)]),
                            attention_mask=torch.cat([mask, torch.zeros_like(mask)]), guided=True, prefix=False,
                            attention_bias=torch.cat([bias, torch.zeros_like(bias)]))

    def _encode(self, text: str) -> Conditioning:
        with self._lock:
            found = self._encoded.get(text)
            if found is not None:
                self._encoded.move_to_end(text)
                return found
        found = build_conditioning(self.bundle, [text], guidance_scale=_GUIDED)
        with self._lock:
            self._encoded[text] = found
            while len(self._encoded) > self._cached_prompts:
                self._encoded.popitem(last=False)
        return found
