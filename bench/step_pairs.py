"""Two native decode steps timed in turn in one process, the comparison bench.huge_pages and bench.step_ab share.

On a shared 2-core machine only steps taken in turn compare: a busy minute then hits both alike,
while separate runs minutes apart differ by more than the change being measured.
"""

from __future__ import annotations

import statistics
import time

import torch

from bench.native_step import HIDDEN, Window
from daemon.native.decoder_step import NativeModel


def alternate(models: dict[str, NativeModel], window: Window, position: int, steps: int,
              riding: tuple[Window, int] | None = None,
              keys_only: dict[str, bool] | None = None,
              own: dict[str, tuple[Window, Window | None]] | None = None) -> dict[str, object]:
    """`steps` pairs of steps at `position` of `window`'s stream, the two `models` (the baseline
    first, the candidate second) in turn, which one goes first alternating; `riding`: a next
    window's rows at their own position in each step, keys-only for the models `keys_only` names.
    Per model the median wall and CPU (all threads) ms; `ratio` the candidate's median over the
    baseline's, `faster_pairs` in how many pairs the candidate was the faster, `same_bits` whether
    the two gave the same logits for the playing rows (from the same inputs and caches). `own`: a
    model's own copies of the window and the riding one (a library that reads another cache format)."""
    kinds = tuple(models)
    if len(kinds) != 2:
        raise ValueError(f"two models to compare, not {len(kinds)}")
    baseline, candidate = kinds
    def rows(kind: str) -> list:
        playing, next_window = (own or {}).get(kind, (window, riding[0] if riding else None))
        return playing.rows + (next_window.rows if next_window is not None else [])

    batches = {kind: model.batch(rows(kind)) for kind, model in models.items()}
    for batch in batches.values():
        batch.set_positions([position, position] + ([riding[1]] * 2 if riding else []))
    logit_rows = {kind: 2 if riding and (keys_only or {}).get(kind) else None for kind in kinds}
    x = torch.randn(len(rows(baseline)), HIDDEN)
    wall: dict[str, list[float]] = {kind: [] for kind in kinds}
    cpu: dict[str, list[float]] = {kind: [] for kind in kinds}
    logits: dict[str, torch.Tensor] = {}
    for i in range(steps + 2):  # the first two pairs warm up
        for kind in (kinds if i % 2 else kinds[::-1]):
            hidden = x.clone()
            start, start_cpu = time.perf_counter(), time.process_time()
            logits[kind] = models[kind].step(hidden, batches[kind], logit_rows=logit_rows[kind])[:2]
            wall[kind].append(1e3 * (time.perf_counter() - start))
            cpu[kind].append(1e3 * (time.process_time() - start_cpu))
    faster = sum(new < old for new, old in zip(wall[candidate][2:], wall[baseline][2:], strict=True))
    result: dict[str, object] = {kind: {"ms": round(statistics.median(wall[kind][2:]), 3),
                                        "cpu_ms": round(statistics.median(cpu[kind][2:]), 3)} for kind in kinds}
    result["ratio"] = round(statistics.median(wall[candidate][2:]) / statistics.median(wall[baseline][2:]), 3)
    result["faster_pairs"] = f"{faster}/{steps}"
    # Both wrote this position's keys and values into the same caches (or alike copies): the same bits, if they agree.
    result["same_bits"] = bool(torch.equal(logits[candidate], logits[baseline]))
    return result
