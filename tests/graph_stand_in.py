"""The GPU's CUDA graph stood in for on the CPU (`graphed_step.Graph`): it replays by running the captured
function again into the same output tensor, on the same static tensors, which is what a replay of a correct
capture computes. Tests of what the graphs' plumbing must get right (static inputs refreshed before each
replay, buffers that stay put) use it; `bash bench/gpu/run.sh` measures the real graphs."""

from __future__ import annotations

from collections.abc import Callable

import torch

from daemon.models.musicgen.graphed_step import Graph


class ReplayGraph(Graph):
    """Counts its captures in `ReplayGraph.captures` (reset it in the test)."""

    captures = 0

    def capture(self, fn: Callable[[], torch.Tensor]) -> torch.Tensor:
        ReplayGraph.captures += 1
        self.fn = fn
        self.out = fn()
        return self.out

    def replay(self) -> None:
        self.out.copy_(self.fn())
