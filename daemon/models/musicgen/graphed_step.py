"""The compiled decode step replayed from a CUDA graph: one launch a step instead of hundreds.

A one-frame step of musicgen-small is ~600 small kernels; on an H100 their launches took 8.7 ms a
step while the GPU's own work was ~1.5 ms (float32 eager, bench.gpu.measure). torch.compile's
"reduce-overhead" mode would capture the step, but it skips CUDA graphs when a graph writes into
its inputs, and the step writes each new key and value into the window's cache (on torch 2.11:
"skipping cudagraphs due to mutated inputs", 112 steps/s, no faster than eager). So riffd captures
the fixed-shape step itself (`MusicgenDecoder._step_masked`, compiled or not) on buffers that stay
put: the window's cache (the decoder keeps its compiled windows' caches and reuses them,
`GraphedCaches`, so a later window of the same shape replays the same graph), and static copies of
the step's other inputs (the column, the position, the condition's cross-attention tensors, copied
in only when the window's condition changes). A replay then reads and writes exactly what an eager
call on those tensors would.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from daemon.models.musicgen.kv_cache import KVCache

log = logging.getLogger(__name__)

#: `MusicgenDecoder._step_masked`'s signature: tokens `[N, K]`, position `[1]`, the cache's keys, values,
#: cross keys, cross values and cross mask; logits `[N, K, V]`.
MaskedStep = Callable[..., torch.Tensor]

#: Windows of one shape kept with their graphs: the playing window and the next one a long job warms.
KEPT_PER_SHAPE = 2


class Graph:
    """What a captured graph needs from the device: capture `fn()` once, replay it. `CudaGraph` is the
    GPU's; tests inject one that replays by calling `fn` again on the same static tensors."""

    def capture(self, fn: Callable[[], torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def replay(self) -> None:
        raise NotImplementedError


class CudaGraph(Graph):
    def __init__(self) -> None:
        self._graph = torch.cuda.CUDAGraph()

    def capture(self, fn: Callable[[], torch.Tensor]) -> torch.Tensor:
        # Warm up on a side stream first (lazy initialisation, autotuning and cuBLAS workspaces must not
        # happen inside the capture), as PyTorch's CUDA graph notes ask.
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):
                fn()
        torch.cuda.current_stream().wait_stream(side)
        with torch.cuda.graph(self._graph):
            out = fn()
        return out

    def replay(self) -> None:
        self._graph.replay()


@dataclass
class GraphedStep:
    """One window cache's captured step. `matches` says whether the cache still has the shapes it was
    captured for; `__call__` feeds a column at a position and returns a copy of the logits."""

    cache: KVCache
    graph: Graph
    tokens: torch.Tensor  # [N, K] int64, static
    position: torch.Tensor  # [1] int64, static
    cross_keys: list[torch.Tensor]  # static copies of the condition's tensors
    cross_values: list[torch.Tensor]
    cross_mask: torch.Tensor  # [N, 1, 1, S]: additive, zeros where the condition masks nothing
    logits: torch.Tensor = field(init=False)
    condition_version: int = -1

    @classmethod
    def capture(cls, step: MaskedStep, cache: KVCache, tokens: torch.Tensor, position: int, graph: Graph) -> GraphedStep:
        """Capture `step` on `cache` for columns shaped as `tokens`, at the window's step feeding `tokens` at
        `position` (the cache must hold its condition and every slot before `position`)."""
        like = cache.cross_keys[0]
        mask = (cache.cross_mask.clone() if cache.cross_mask is not None
                else torch.zeros((like.shape[0], 1, 1, like.shape[2]), dtype=like.dtype, device=like.device))
        made = cls(cache=cache, graph=graph, tokens=tokens.clone(),
                   position=torch.full((1,), position, dtype=torch.long, device=tokens.device),
                   cross_keys=[k.clone() for k in cache.cross_keys], cross_values=[v.clone() for v in cache.cross_values],
                   cross_mask=mask, condition_version=cache.condition_version)
        # The capture's warm-up calls run this very step (this column at this position): each writes the
        # same key and value into the same slot and reads the slots before it, so running it again is
        # harmless, and the replay that follows gives the step's logits.
        made.logits = graph.capture(lambda: step(made.tokens, made.position, cache.keys, cache.values, made.cross_keys,
                                                 made.cross_values, made.cross_mask))
        return made

    def matches(self, cache: KVCache, tokens: torch.Tensor) -> bool:
        """Whether this graph steps `cache` with columns like `tokens` (the same buffers and shapes)."""
        return (cache is self.cache and tokens.shape == self.tokens.shape
                and [k.shape for k in cache.cross_keys] == [k.shape for k in self.cross_keys])

    def __call__(self, tokens: torch.Tensor, position: int) -> torch.Tensor:
        cache = self.cache
        if cache.condition_version != self.condition_version:
            # A new window's condition, or a jam's swap: into the static tensors the graph reads.
            for static, new in zip(self.cross_keys + self.cross_values, cache.cross_keys + cache.cross_values,
                                   strict=True):
                static.copy_(new)
            if cache.cross_mask is None:
                self.cross_mask.zero_()
            else:
                self.cross_mask.copy_(cache.cross_mask)
            self.condition_version = cache.condition_version
        self.tokens.copy_(tokens)
        self.position.fill_(position)
        self.graph.replay()
        return self.logits.clone()  # the next replay overwrites the static output


class GraphedCaches:
    """The compiled step's window caches, kept with their graphs: a later window of the same rows and
    positions takes a kept one, so its steps replay a graph captured before (a capture costs a few
    eager steps, on the way to a job's first audio)."""

    def __init__(self, allocate: Callable[[int, int], KVCache], make_graph: Callable[[], Graph]) -> None:
        self._allocate = allocate
        self._make_graph = make_graph
        self._free: dict[tuple[int, int], list[KVCache]] = {}

    @contextmanager
    def open(self, rows: int, positions: int) -> Iterator[KVCache]:
        key = (rows, positions)
        free = self._free.setdefault(key, [])
        cache = free.pop() if free else self._allocate(rows, positions)
        try:
            yield cache
        finally:
            if cache.bindings.get("graph") is not None and len(free) < KEPT_PER_SHAPE:
                free.append(cache)
            else:
                cache.free()

    def step(self, step: MaskedStep, cache: KVCache, tokens: torch.Tensor, position: int) -> torch.Tensor:
        """`step` on `cache` at `position`, replayed from the cache's graph (captured on first use)."""
        graphed = cache.bindings.get("graph")
        if not isinstance(graphed, GraphedStep) or not graphed.matches(cache, tokens):
            graphed = GraphedStep.capture(step, cache, tokens, position, self._make_graph())
            cache.bindings["graph"] = graphed
            log.info("captured the decode step of a %d-row, %d-slot window as a graph", tokens.shape[0],
                     cache.max_positions)
        return graphed(tokens, position)

    @property
    def kept(self) -> int:
        """Caches kept for reuse right now."""
        return sum(len(free) for free in self._free.values())
