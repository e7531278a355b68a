"""A fixed-shape slot cache that every stream of a decoder shares: one step for all of them.

Where riffd's native CPU step does not run (every GPU mode), the shared step of `StepBatch` used to
multiply each stream's rows on their own, because a library's GEMM result for a row can depend on
the rows beside it; 64 streams then cost ~64 steps. Here every window's rows live in one buffer per
layer, `[R, heads, P + 1, head_dim]` keys and values (R rows: a guided stream owns a pair), with
cross-attention keys and values `[R, heads, C, head_dim]` and an additive mask per row. One step
runs the whole arena: each projection one product over all R rows (rows no stream feeds this step
are padding), the new key and value written at each row's own position, masked attention (a row
sees its slots up to its position), logits of every row. The shapes never depend on who plays, so a
row's result depends on its own inputs only: a stream's codes are the same alone or with others
(tests/musicgen/test_arena.py, bit for bit).

Attention reads the first L slots, L the largest stepping position rounded up to `POSITION_BUCKET`,
so early steps do not read every slot, and only the first rows up to the last stepping one (rounded up
to a power of two from `MIN_ROW_BUCKET`; windows take the first free rows), so a few streams in a big
arena do not read every row's slots (musicgen-small in float16, 128 rows, every slot: 19 GB a step).
A row's result must depend on neither: the products stay over all R rows, the slots past its position
are masked (each adds an exact zero to the softmax's sums), and attention is each (row, head)'s own
whatever rows come with it (the same bits on the CPU's kernels; the test steps streams far apart, in
rows far apart).

Slot P of each row is a scratch slot, never read (no row's position reaches it): rows that do not
step write their key and value there, as a window's prefill may be filling them on another thread.

On a GPU the step is replayed from CUDA graphs (`use_graphs`), one per length of slots read, captured
when the arena is made (its rows all padding, no stream playing): a step of ~600 small kernels cost
8.7 ms of launches on an H100 for ~1.5 ms of work (bench.gpu.measure). The buffers stay put, so a graph
reads and writes them as an eager call would; the step's inputs (codes, positions, slots to write) go
into static tensors before each replay. With graphs the step reads two lengths of slots (a bucket, or
every slot), so two graphs per bucket of rows, not one per bucket of slots.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from daemon.models.musicgen.graphed_step import Graph
from daemon.models.musicgen.kv_cache import KVCache
from daemon.models.musicgen.weights import DecoderWeights, LayerWeights

log = logging.getLogger(__name__)

#: `KVCache.bindings`' key of an arena-backed window's rows.
BINDING = "arena"
#: The fewest rows attention reads (then 2x, 4x, ... up to the arena's rows).
MIN_ROW_BUCKET = 8


@dataclass(eq=False)
class ArenaRows:
    """A window's rows of the arena: `count` rows from `start`."""

    start: int
    count: int
    condition_version: int = -1  # of the window's cross-attention tensors last copied into the arena
    unshared: bool = False  # its condition does not fit the arena's cross slots: stepped on today's path


class SlotArena:
    """The slots of every arena-backed window of one decoder, and the step over all of them.

    Thread-safe for `take`/`give` (jobs open windows on their own threads); `step` runs one at a
    time (the decoder's contract)."""

    def __init__(self, weights: DecoderWeights, device: torch.device, *, rows: int, positions: int, cross_len: int,
                 position_bucket: int, dtype: torch.dtype, compiled: bool = False) -> None:
        if rows < 1 or positions < 1 or positions > weights.max_positions:
            raise ValueError(f"an arena of {rows} rows and {positions} positions (the model has "
                             f"{weights.max_positions})")
        self.weights = weights
        self.device = device
        self.rows = rows
        self.positions = positions
        self.position_bucket = position_bucket
        self.dtype = dtype
        self.has_cross = weights.layers[0].cross_q is not None
        self.cross_len = cross_len if self.has_cross else 0
        layers, heads, head_dim = len(weights.layers), weights.heads, weights.head_dim
        # Zeros, not garbage: padding rows read them, and uninitialised memory could hold NaN.
        slots = (rows, heads, positions + 1, head_dim)  # + 1: the scratch slot
        self.keys = [torch.zeros(slots, dtype=dtype, device=device) for _ in range(layers)]
        self.values = [torch.zeros(slots, dtype=dtype, device=device) for _ in range(layers)]
        cross = (rows, heads, self.cross_len, head_dim)
        self.cross_keys = [torch.zeros(cross, dtype=weights.dtype, device=device) for _ in range(layers)
                           if self.has_cross]
        self.cross_values = [torch.zeros(cross, dtype=weights.dtype, device=device) for _ in range(layers)
                             if self.has_cross]
        self.cross_mask = torch.zeros((rows, 1, 1, self.cross_len), dtype=weights.dtype, device=device)
        self._free = [True] * rows
        self._lock = threading.Lock()
        # Fused kernels where compiled (on a GPU captured as graphs by `use_graphs`, not by torch.compile's
        # "reduce-overhead", which skips graphs that write into their inputs: graphed_step.py).
        self._run = torch.compile(self._forward, fullgraph=True, dynamic=False) if compiled else self._forward
        self._graphs: dict[tuple[int, int], tuple[Graph, torch.Tensor]] = {}  # by (rows, slots) read: graph, output
        buckets, count = [], min(MIN_ROW_BUCKET, rows)
        while count < rows and not compiled:  # compiled: every row (a compile per shape costs 20-25 s on an H100)
            buckets.append(count)
            count *= 2
        self.row_buckets = [*buckets, rows]  # the rows attention reads, by the last stepping row
        self._tokens = torch.zeros((rows, weights.num_codebooks), dtype=torch.long, device=device)  # static inputs
        self._index = torch.zeros((3, rows), dtype=torch.long, device=device)

    def use_graphs(self, make_graph: Callable[[], Graph]) -> None:
        """Replay the step from graphs made by `make_graph` (`CudaGraph` on a GPU; tests give a stand-in),
        captured now for both lengths a step reads, every row padding (no stream plays yet: a capture
        must not meet other threads' work on the device)."""
        for live in self.row_buckets:
            for length in sorted({min(self.position_bucket, self.positions), self.positions}):
                self._tokens.zero_()
                self._index[:2].zero_()
                self._index[2].fill_(self.positions)  # every row writes the scratch slot
                graph = make_graph()
                with torch.no_grad():
                    out = graph.capture(lambda length=length, live=live: self._run(
                        self._tokens, self._index[1], self._index[2], length, live))
                self._graphs[(live, length)] = (graph, out)

    def drop_graphs(self) -> None:
        """Step eagerly again (a capture failed)."""
        self._graphs.clear()

    @property
    def graphed(self) -> bool:
        return bool(self._graphs)

    @staticmethod
    def row_bytes(weights: DecoderWeights, positions: int, cross_len: int, dtype: torch.dtype) -> int:
        """Bytes one row of an arena of `positions` slots and `cross_len` cross slots takes."""
        size = torch.tensor([], dtype=dtype).element_size()
        cross = cross_len * torch.tensor([], dtype=weights.dtype).element_size() \
            if weights.layers[0].cross_q is not None else 0
        per_layer = weights.heads * weights.head_dim * 2 * ((positions + 1) * size + cross)
        return len(weights.layers) * per_layer + cross_len * torch.tensor([], dtype=weights.dtype).element_size()

    @property
    def nbytes(self) -> int:
        tensors = (*self.keys, *self.values, *self.cross_keys, *self.cross_values, self.cross_mask)
        return sum(t.numel() * t.element_size() for t in tensors)

    @property
    def free_rows(self) -> int:
        with self._lock:
            return sum(self._free)

    def fits(self, rows: int, positions: int) -> bool:
        """Whether a window of this shape could have rows here (were they free)."""
        return rows <= self.rows and positions <= self.positions

    # Rows.
    def take(self, count: int) -> ArenaRows | None:
        """`count` free adjacent rows (the first that fit), or None."""
        with self._lock:
            run = 0
            for row, free in enumerate(self._free):
                run = run + 1 if free else 0
                if run == count:
                    start = row - count + 1
                    self._free[start:row + 1] = [False] * count
                    return ArenaRows(start, count)
        return None

    def give(self, rows: ArenaRows) -> None:
        """Free `rows` (the window ended, was cancelled or left)."""
        with self._lock:
            self._free[rows.start:rows.start + rows.count] = [True] * rows.count

    def view(self, rows: ArenaRows, positions: int) -> KVCache:
        """A window's cache over its rows' first `positions` slots (views: a prefill writes the arena)."""
        part = slice(rows.start, rows.start + rows.count)
        cache = KVCache([k[part, :, :positions] for k in self.keys], [v[part, :, :positions] for v in self.values],
                        [], [], None, positions)
        cache.bindings[BINDING] = rows
        return cache

    def shares(self, cache: KVCache) -> bool:
        """Whether `cache` steps in the arena: its rows are here, and its condition fits the cross slots
        (copied in when it changed since the last step: a window's first, a jam's new prompt)."""
        rows: ArenaRows | None = cache.bindings.get(BINDING)
        if rows is None or rows.unshared:
            return False
        if rows.condition_version != cache.condition_version:
            if not self._set_condition(cache, rows):
                rows.unshared = True
                log.warning("a window's condition does not fit the arena's %d cross-attention slots: it steps "
                            "on its own", self.cross_len)
                return False
            rows.condition_version = cache.condition_version
        return True

    def _set_condition(self, cache: KVCache, rows: ArenaRows) -> bool:
        if not self.has_cross:
            return True
        length = cache.cross_keys[0].shape[2] if cache.cross_keys else self.cross_len + 1
        if length > self.cross_len:
            return False
        part = slice(rows.start, rows.start + rows.count)
        for arena, own in ((self.cross_keys, cache.cross_keys), (self.cross_values, cache.cross_values)):
            for layer, tensor in zip(arena, own, strict=True):
                layer[part, :, :length].copy_(tensor)
                layer[part, :, length:].zero_()
        # The padding slots masked out (their keys are zeros: a score of exactly 0, then the mask).
        mask = self.cross_mask[part]
        mask.fill_(torch.finfo(self.cross_mask.dtype).min)
        if cache.cross_mask is not None:
            mask[..., :length].copy_(cache.cross_mask.expand(rows.count, 1, 1, length))
        else:
            mask[..., :length].zero_()
        return True

    # The step.
    def step(self, caches: Sequence[KVCache], columns: Sequence[torch.Tensor], positions: Sequence[int]) -> list[torch.Tensor]:
        """One step of the arena: window i feeds `columns[i]` `[B_i, K]` at `positions[i]` (its null rows,
        where guided, the same codes as its conditional ones); its logits `[N_i, K, V]` float32. Every
        cache must be one `shares` said yes to."""
        gather = [0] * self.rows  # each arena row's row of the fed tokens (padding rows: any)
        at = [0] * self.rows  # the position each row's embedding and mask take (padding: 0)
        writes = [self.positions] * self.rows  # where each row's new key and value go (padding: scratch)
        offset = 0
        spans: list[slice] = []
        for cache, fed, position in zip(caches, columns, positions, strict=True):
            rows: ArenaRows = cache.bindings[BINDING]
            prompts = fed.shape[0]
            if rows.count not in (prompts, 2 * prompts) or not 0 <= position < self.positions:
                raise ValueError(f"a step of {prompts} prompts at {position} for {rows.count} arena rows "
                                 f"of {self.positions} positions")
            for row in range(rows.count):
                # (guidance: rows [conditional..., null...] both fed the prompts' codes, as `_tokens` repeats them)
                gather[rows.start + row] = offset + row % prompts
                at[rows.start + row] = writes[rows.start + row] = position
            offset += prompts
            spans.append(slice(rows.start, rows.start + rows.count))
        # One transfer of the step's indices to the device.
        index = torch.tensor([gather, at, writes], dtype=torch.long).to(self.device, non_blocking=True)
        fed_all = torch.cat(list(columns)).index_select(0, index[0])
        bucket, end = self.position_bucket, max(positions) + 1
        last = max(span.stop for span in spans)
        live = next(count for count in self.row_buckets if count >= last)
        if self._graphs:
            graph, out = self._graphs[(live, min(bucket, self.positions) if end <= bucket else self.positions)]
            self._tokens.copy_(fed_all)
            self._index.copy_(index)
            graph.replay()
            logits = out.clone()  # the next replay overwrites the graph's output
        else:
            logits = self._run(fed_all, index[1], index[2], min(-(-end // bucket) * bucket, self.positions), live)
        return [logits[span] for span in spans]

    def _forward(self, tokens: torch.Tensor, at: torch.Tensor, writes: torch.Tensor, length: int,
                 live: int) -> torch.Tensor:
        """Logits `[R, K, V]` float32 of codes `tokens` `[R, K]` at positions `at` `[R]`, keys and values
        written at slots `writes` `[R]`, attention over the first `length` slots of the first `live` rows
        (the others' attention zeros: padding)."""
        w = self.weights
        books = torch.arange(tokens.shape[1], device=tokens.device)[:, None]
        x = w.embeddings[books, tokens[..., None]].sum(dim=1) + w.positions.index_select(0, at)[:, None]  # [R, 1, H]
        visible = (torch.arange(length, device=at.device)[None, :] <= at[:live, None])[:, None, None]  # [live, 1, 1, L]
        slot = writes.view(-1, 1, 1, 1).expand(-1, w.heads, 1, w.head_dim)
        for index, layer in enumerate(w.layers):
            x = self._layer(layer, index, x, slot, visible, length, live)
        return w.lm_heads(w.final_norm(x)).view(x.shape[0], -1, w.vocab).float()

    def _layer(self, layer: LayerWeights, index: int, x: torch.Tensor, slot: torch.Tensor, visible: torch.Tensor,
               length: int, live: int) -> torch.Tensor:
        """One pre-norm decoder layer over every arena row, `x` `[R, 1, H]` (attention over the first `live`)."""
        w = self.weights
        n, _, hidden = x.shape
        q, k, v = layer.qkv(layer.self_norm(x)).view(n, 1, 3, w.heads, w.head_dim).permute(2, 0, 3, 1, 4)
        keys, values = self.keys[index], self.values[index]
        keys.scatter_(2, slot, k.to(keys.dtype))
        values.scatter_(2, slot, v.to(values.dtype))
        attn = F.scaled_dot_product_attention(q[:live], keys[:live, :, :length].to(q.dtype),
                                              values[:live, :, :length].to(q.dtype), attn_mask=visible)
        x = x + layer.self_out(_padded(attn.transpose(1, 2).reshape(live, 1, hidden), n))
        if layer.cross_q is not None and layer.cross_out is not None and layer.cross_norm is not None:
            q = layer.cross_q(layer.cross_norm(x)).view(n, 1, w.heads, w.head_dim).transpose(1, 2)
            attn = F.scaled_dot_product_attention(q[:live], self.cross_keys[index][:live],
                                                  self.cross_values[index][:live], attn_mask=self.cross_mask[:live])
            x = x + layer.cross_out(_padded(attn.transpose(1, 2).reshape(live, 1, hidden), n))
        return x + layer.fc2(w.activation(layer.fc1(layer.ffn_norm(x))))


def _padded(rows: torch.Tensor, count: int) -> torch.Tensor:
    """`rows` `[r, 1, H]` and zero rows after them up to `count` (the products stay over every arena row)."""
    if rows.shape[0] == count:
        return rows
    return torch.cat([rows, rows.new_zeros((count - rows.shape[0], *rows.shape[1:]))])
