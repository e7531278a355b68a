"""The decoder calls a jam makes, in one place: open a window cache, prefill, extend (teacher-force known
columns in one pass), step, and swap a cache's cross-attention condition between two steps.

The jam's loop is written against `JamDecoder` only, so it follows the decode core wherever that
keeps these five calls; `EngineDecoder` maps them onto today's `MusicgenEngine`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
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
    """`JamDecoder` over today's `MusicgenEngine`."""

    def __init__(self, engine: MusicgenEngine) -> None:
        self.engine = engine

    @property
    def vocab(self) -> int:
        return self.engine.vocab

    @property
    def mode(self) -> str:
        return self.engine.options.name

    @property
    def cache_format(self) -> str:
        return str(self.engine.cache_dtype).removeprefix("torch.")

    @contextmanager
    def open_cache(self, rows: int, positions: int) -> Iterator[KVCache]:
        # Today's engine sizes a cache from a condition's rows; only their number matters.
        shape_only = Conditioning(torch.zeros((rows, 1, 1)), None, guided=False, prefix=False)
        with self.engine.open_cache(shape_only, positions) as cache:
            yield cache

    def prefill(self, cache: KVCache, cond: Conditioning, inputs: torch.Tensor) -> torch.Tensor:
        # Today's prefill adds the condition's keys to the cache: start from none, as a swap would.
        cache.cross_keys.clear()
        cache.cross_values.clear()
        cache.cross_mask = None
        return self.engine.prefill(cache, cond, inputs)

    def extend(self, cache: KVCache, columns: torch.Tensor, start: int) -> torch.Tensor:
        return self.engine.extend(cache, columns, start)

    def step(self, cache: KVCache, column: torch.Tensor, position: int) -> torch.Tensor:
        return self.engine.decode_one_step(cache, column, position)

    def set_condition(self, cache: KVCache, cond: Conditioning, *, same_states: bool = False) -> None:
        self.engine.swap_conditioning(cache, cond, same_states=same_states)
