"""The decoder calls a jam makes, in one place: open a window cache, prefill, extend (teacher-force known
columns in one pass), step, and swap a cache's cross-attention condition between two steps.

The jam's loop is written against `JamDecoder` only; `EngineDecoder` maps it onto the engine's
`MusicgenDecoder` (decoder.py), which has these calls under the same names.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol

import torch

from daemon.models.musicgen.conditioning import Conditioning
from daemon.models.musicgen.engine import MusicgenEngine
from daemon.models.musicgen.kv_cache import KVCache


class JamDecoder(Protocol):
    """What a jam needs from the decoder. Logits are float32: `[N, K, V]` (or `[N, T, K, V]` from extend)."""

    @property
    def vocab(self) -> int: ...

    @property
    def mode(self) -> str:
        """The engine mode (a snapshot resumes exactly only under the same)."""
        ...

    @property
    def cache_format(self) -> str:
        """The self-attention cache's dtype (int8 for riffd's native step)."""
        ...

    def open_cache(self, rows: int, positions: int) -> AbstractContextManager[KVCache]: ...

    def prefill(self, cache: KVCache, cond: Conditioning, inputs: torch.Tensor) -> torch.Tensor: ...

    def extend(self, cache: KVCache, columns: torch.Tensor, start: int) -> torch.Tensor: ...

    def step(self, cache: KVCache, column: torch.Tensor, position: int) -> torch.Tensor: ...

    def set_condition(self, cache: KVCache, cond: Conditioning, *, same_states: bool = False) -> None:
        """Attend to `cond` from the next step on (`same_states`: only its mask or bias changed)."""
        ...


class EngineDecoder:
    """`JamDecoder` over a `MusicgenEngine`'s decoder."""

    def __init__(self, engine: MusicgenEngine) -> None:
        self.engine = engine
        self.decoder = engine.decoder

    @property
    def vocab(self) -> int:
        return self.decoder.vocab

    @property
    def mode(self) -> str:
        return self.engine.options.name

    @property
    def cache_format(self) -> str:
        return str(self.decoder.cache_dtype).removeprefix("torch.")

    def open_cache(self, rows: int, positions: int) -> AbstractContextManager[KVCache]:
        return self.decoder.open_cache(rows, positions)

    def prefill(self, cache: KVCache, cond: Conditioning, inputs: torch.Tensor) -> torch.Tensor:
        return self.decoder.prefill(cache, cond, inputs)

    def extend(self, cache: KVCache, columns: torch.Tensor, start: int) -> torch.Tensor:
        return self.decoder.extend(cache, columns, start)

    def step(self, cache: KVCache, column: torch.Tensor, position: int) -> torch.Tensor:
        return self.decoder.step(cache, column, position)

    def set_condition(self, cache: KVCache, cond: Conditioning, *, same_states: bool = False) -> None:
        self.decoder.set_condition(cache, cond, same_states=same_states)
