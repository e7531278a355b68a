"""riffd's own MusicGen decode loop: prefill, then one small step per frame.

The step runs the checkpoint's decoder weights (held in the format `EngineOptions` picks)
against a fixed-shape key/value cache written in place, with cross-attention keys and values
computed once per window. Guidance runs as a batch of two (conditional, null). Sampling and the
delay pattern stay on the model's device, in `sampling.py` and `delay.py`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from daemon.models.musicgen.conditioning import Conditioning
from daemon.models.musicgen.delay import WindowPattern
from daemon.models.musicgen.kv_cache import KVCache
from daemon.models.musicgen.loader import MusicgenBundle
from daemon.models.musicgen.native_step import NativeStep
from daemon.models.musicgen.sampling import apply_guidance, sample_next
from daemon.models.musicgen.speculative import speculative_columns
from daemon.models.musicgen.options import SPECULATIVE_LOOKAHEAD, EngineOptions
from daemon.models.musicgen.speed import Linear, compute_dtype, make_linear
from protocol.errors import Cancelled
from protocol.params import GenerationParams

log = logging.getLogger(__name__)

#: With a compiled step, cache lengths and cross-attention lengths are rounded up to these, so a
#: new prompt or duration reuses a compiled graph instead of compiling another (a compile costs
#: tens of seconds; masked padding costs next to nothing). Text prompts rarely pass 128 tokens.
POSITION_BUCKET = 256
CROSS_BUCKET = 128


@dataclass(frozen=True)
class Norm:
    weight: torch.Tensor
    bias: torch.Tensor
    eps: float

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, (x.shape[-1],), self.weight, self.bias, self.eps)


@dataclass(frozen=True)
class LayerWeights:
    """One decoder layer. The cross-attention parts are None on melody checkpoints."""

    self_norm: Norm
    qkv: Linear  # [3H, H]
    self_out: Linear
    cross_norm: Norm | None
    cross_q: Linear | None
    cross_out: Linear | None
    cross_kv: torch.nn.Module | None  # the checkpoint's encoder_attn, whose k/v run once a window
    ffn_norm: Norm
    fc1: Linear
    fc2: Linear


def _norm(module: torch.nn.LayerNorm, dtype: torch.dtype) -> Norm:
    return Norm(module.weight.detach().to(dtype), module.bias.detach().to(dtype), module.eps)


class MusicgenEngine:
    """The streaming decode loop over one loaded checkpoint; `columns` is its entry point."""

    def __init__(self, bundle: MusicgenBundle, options: EngineOptions = EngineOptions()) -> None:
        self.bundle = bundle
        self.options = options.validate(bundle.device)
        self.dtype = compute_dtype(options)
        dtype = self.dtype
        causal_lm = bundle.model.decoder
        decoder = causal_lm.model.decoder
        config = causal_lm.config
        self.heads = int(config.num_attention_heads)
        self.head_dim = int(config.hidden_size) // self.heads
        self.vocab = int(config.vocab_size)
        self.activation = decoder.layers[0].activation_fn
        # [K, V + 1, H]: one table per codebook, the pad/BOS row included.
        self.embeddings = torch.stack([e.weight.detach() for e in decoder.embed_tokens]).to(dtype)
        self.positions = decoder.embed_positions.weights.detach().to(dtype)  # [max_positions, H]
        self.final_norm = _norm(decoder.layer_norm, dtype)
        self.heads_out = make_linear([h.weight.detach() for h in causal_lm.lm_heads], options)  # [K * V, H]
        self.layers = [self._layer(layer, options) for layer in decoder.layers]
        self._live_caches = 0
        # int8 on the CPU: the whole step in one native call, when riffd's kernels run here. Its
        # self-attention cache holds int8 vectors with a scale each: a quarter of float32's bytes.
        self._native = NativeStep.build(self) if options.weights == "int8" and not options.compile else None
        self.cache_dtype = NativeStep.CACHE_DTYPE if self._native is not None else dtype
        if options.weights == "int8":
            log.info("%s int8 engine: %s", bundle.model_id, "riffd's native decode step" if self._native is not None
                     else "PyTorch's kernels (riffd's native step cannot run these weights here)")
        # +draft: a quantised engine over the same checkpoint proposes columns for these weights to check.
        self.draft = MusicgenEngine(bundle, options.draft_options(bundle.device)) if options.draft else None
        self._step = self._decode_masked
        if options.compile:
            if bundle.device.type == "cpu":
                log.warning("compiling the decode step on the CPU: measured slower than eager there "
                            "(bench.musicgen_stream); it pays off on GPUs")
            # CUDA graphs remove the launch overhead that dominates a one-frame step on a GPU.
            mode = "reduce-overhead" if bundle.device.type == "cuda" else "default"
            self._step = torch.compile(self._decode_masked, fullgraph=True, dynamic=False, mode=mode)

    @staticmethod
    def _layer(layer: torch.nn.Module, options: EngineOptions) -> LayerWeights:
        attn, dtype = layer.self_attn, compute_dtype(options)
        qkv = make_linear([attn.q_proj.weight.detach(), attn.k_proj.weight.detach(), attn.v_proj.weight.detach()],
                          options)
        cross = getattr(layer, "encoder_attn", None)
        # _cross_prepare relies on bias-free projections: zero states give zero keys and values.
        assert cross is None or (cross.k_proj.bias is None and cross.v_proj.bias is None)
        return LayerWeights(
            self_norm=_norm(layer.self_attn_layer_norm, dtype), qkv=qkv,
            self_out=make_linear([attn.out_proj.weight.detach()], options),
            cross_norm=_norm(layer.encoder_attn_layer_norm, dtype) if cross is not None else None,
            cross_q=make_linear([cross.q_proj.weight.detach()], options) if cross is not None else None,
            cross_out=make_linear([cross.out_proj.weight.detach()], options) if cross is not None else None,
            cross_kv=cross,
            ffn_norm=_norm(layer.final_layer_norm, dtype),
            fc1=make_linear([layer.fc1.weight.detach()], options),
            fc2=make_linear([layer.fc2.weight.detach()], options),
        )

    @property
    def live_caches(self) -> int:
        """Windows whose cache is allocated right now (0 once every stream ended or was stopped)."""
        return self._live_caches

    @property
    def weight_bytes_per_step(self) -> int:
        """Bytes of weights one decode step reads: every projection once, plus the lm heads."""
        total = self.heads_out.nbytes
        for lw in self.layers:
            parts = [lw.qkv, lw.self_out, lw.fc1, lw.fc2, lw.cross_q, lw.cross_out]
            total += sum(p.nbytes for p in parts if p is not None)
        return total

    # The hot loop.
    @torch.inference_mode()
    def columns(
        self,
        cond: Conditioning,
        prompt: torch.Tensor | None,
        new_frames: int,
        params: GenerationParams,
        generator: torch.Generator | None,
        should_stop: Callable[[], bool] | None = None,
    ) -> Iterator[torch.Tensor]:
        """Yield each new sequence column `[B, K]` of a window; same contract as `decode_loop.iter_columns`."""
        if self.draft is not None:
            yield from speculative_columns(self, self.draft, cond, prompt, new_frames, params, generator, should_stop,
                                           SPECULATIVE_LOOKAHEAD)
            return
        pattern, position = self.plan_window(cond, prompt, new_frames)
        with self.open_cache(cond, position + pattern.steps - 1) as cache:
            logits = self.prefill(cache, cond, pattern.inputs)  # [N, K, V]
            for step in range(pattern.steps):
                # 1. guidance: conditional and null halves of the batch into one set of scores
                scores = logits.reshape(-1, self.vocab)
                if cond.guided:
                    scores = apply_guidance(scores, params.guidance_scale)
                # 2. sample, then 3. force the delay pattern (BOS ramp, prompt, pad after the end)
                proposed = sample_next(scores, params, generator).view(cond.batch_size, self.bundle.num_codebooks)
                column = pattern.column(step, proposed)
                yield column
                if should_stop is not None and should_stop():
                    raise Cancelled("generation cancelled")
                # 4. feed the column back, unless it was the window's last
                if step + 1 < pattern.steps:
                    logits = self.decode_one_step(cache, column, position)
                    position += 1

    def plan_window(self, cond: Conditioning, prompt: torch.Tensor | None,
                    new_frames: int) -> tuple[WindowPattern, int]:
        """The window's delay pattern, and the cache slot of its first sampled column (after any melody prefix)."""
        bundle = self.bundle
        pattern = WindowPattern.plan(prompt, cond.batch_size, bundle.num_codebooks, bundle.audio_channels, new_frames,
                                     bundle.pad_token_id, bundle.device)
        prefix = cond.hidden_states.shape[1] if cond.prefix else 0
        return pattern, prefix + pattern.inputs.shape[-1]

    @contextmanager
    def open_cache(self, cond: Conditioning, positions: int) -> Iterator[KVCache]:
        """A window's cache for `positions` slots, freed when the block (or the generator holding it) ends."""
        if positions > self.positions.shape[0]:
            raise ValueError(f"window needs {positions} positions, the model has {self.positions.shape[0]}")
        if self.options.compile:
            positions = min(-(-positions // POSITION_BUCKET) * POSITION_BUCKET, self.positions.shape[0])
        cache = KVCache.allocate(layers=len(self.layers), batch=cond.hidden_states.shape[0], heads=self.heads,
                                 head_dim=self.head_dim, max_positions=positions, dtype=self.cache_dtype,
                                 device=self.bundle.device)
        self._live_caches += 1
        try:
            yield cache
        finally:
            cache.free()
            self._live_caches -= 1

    def prefill(self, cache: KVCache, cond: Conditioning, inputs: torch.Tensor) -> torch.Tensor:
        """Run the known columns `[B, K, T]` (and a melody prefix); fill the cache; logits `[N, K, V]` of the last."""
        tokens = inputs.repeat(2, 1, 1) if cond.guided else inputs  # [N, K, T]
        x = self._embed(tokens)  # [N, T, H]
        if cond.prefix:
            x = torch.cat([cond.hidden_states.to(x.dtype), x], dim=1)
        else:
            self._cross_prepare(cache, cond)
        length = x.shape[1]
        x = x + self.positions[:length]
        positions = torch.arange(length, device=x.device)
        for index, lw in enumerate(self.layers):
            x = self._layer_forward(lw, x, cache, index, positions, length, None, True)
        return self._logits(x[:, -1:])

    def extend(self, cache: KVCache, columns: torch.Tensor, start: int) -> torch.Tensor:
        """Feed known columns `[B, K, T]` at slots `start`.. in one pass; logits `[N, T, K, V]` after each.

        The weights are read once for all T columns: what makes checking drafted columns cheap.
        """
        tokens = columns.repeat(2, 1, 1) if cache.keys[0].shape[0] != columns.shape[0] else columns
        length = tokens.shape[-1]
        x = self._embed(tokens) + self.positions[start:start + length]
        positions = torch.arange(start, start + length, device=x.device)
        # Row i sees every slot up to its own (start + i): causal, offset by what the cache holds.
        visible = (torch.arange(start + length, device=x.device)[None, :] <= positions[:, None])[None, None]
        for index, lw in enumerate(self.layers):
            x = self._layer_forward(lw, x, cache, index, positions, start + length, visible, False)
        return self._row_logits(x)

    def decode_one_step(self, cache: KVCache, column: torch.Tensor, position: int) -> torch.Tensor:
        """Feed one column `[B, K]` at `position`; logits `[N, K, V]` for the next."""
        tokens = column.repeat(2, 1) if cache.keys[0].shape[0] != column.shape[0] else column
        if self._native is not None:
            x = self._embed(tokens[..., None]) + self.positions[position]
            return self._native(x, cache, position).view(tokens.shape[0], -1, self.vocab)
        position_t = torch.tensor([position], device=column.device)
        if self.options.compile:
            return self._step(tokens, position_t, cache.keys, cache.values, cache.cross_keys, cache.cross_values,
                              cache.cross_mask)
        return self._decode_sliced(tokens, position_t, position, cache)

    def _decode_sliced(self, tokens: torch.Tensor, position_t: torch.Tensor, position: int,
                       cache: KVCache) -> torch.Tensor:
        """Eager step: attend to the cache's first `position + 1` slots only (no mask, no wasted reads)."""
        x = self._embed(tokens[..., None]) + self.positions[position]
        for index, lw in enumerate(self.layers):
            x = self._layer_forward(lw, x, cache, index, position_t, position + 1, None, False)
        return self._logits(x)

    def _decode_masked(self, tokens: torch.Tensor, position_t: torch.Tensor, keys: list[torch.Tensor],
                       values: list[torch.Tensor], cross_keys: list[torch.Tensor], cross_values: list[torch.Tensor],
                       cross_mask: torch.Tensor | None) -> torch.Tensor:
        """Fixed-shape step for torch.compile: the whole cache, slots past `position` masked out."""
        cache = KVCache(keys, values, cross_keys, cross_values, cross_mask, keys[0].shape[2])
        x = self._embed(tokens[..., None]) + self.positions.index_select(0, position_t)
        visible = (torch.arange(cache.max_positions, device=tokens.device) <= position_t)[None, None, None]
        for index, lw in enumerate(self.layers):
            x = self._layer_forward(lw, x, cache, index, position_t, cache.max_positions, visible, False)
        return self._logits(x)

    # The model, one function each.
    def _embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """Sum of the codebooks' embeddings: `[N, K, T]` codes to `[N, T, H]`."""
        books = torch.arange(tokens.shape[1], device=tokens.device)[:, None]
        return self.embeddings[books, tokens].sum(dim=1)

    def _layer_forward(self, lw: LayerWeights, x: torch.Tensor, cache: KVCache, index: int,
                       positions: torch.Tensor, visible_len: int, visible: torch.Tensor | None,
                       causal: bool) -> torch.Tensor:
        """One pre-norm decoder layer on `x` `[N, T, H]` whose rows sit at `positions` `[T]`."""
        n, t, hidden = x.shape
        q, k, v = lw.qkv(lw.self_norm(x)).view(n, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        cache.write(index, positions, k, v)
        keys, values = cache.read(index, visible_len, q.dtype)
        attn = F.scaled_dot_product_attention(q, keys, values, attn_mask=visible, is_causal=causal)
        x = x + lw.self_out(attn.transpose(1, 2).reshape(n, t, hidden))
        if lw.cross_q is not None:
            q = lw.cross_q(lw.cross_norm(x)).view(n, t, self.heads, self.head_dim).transpose(1, 2)
            attn = F.scaled_dot_product_attention(q, cache.cross_keys[index], cache.cross_values[index],
                                                  attn_mask=cache.cross_mask)
            x = x + lw.cross_out(attn.transpose(1, 2).reshape(n, t, hidden))
        return x + lw.fc2(self.activation(lw.fc1(lw.ffn_norm(x))))

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        """Scores `[N, K, V]` (float32) of the last row of `x` `[N, T, H]`."""
        return self._row_logits(x[:, -1:])[:, 0]

    def _row_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Scores `[N, T, K, V]` (float32) of every row of `x` `[N, T, H]`."""
        return self.heads_out(self.final_norm(x)).view(x.shape[0], x.shape[1], -1, self.vocab).float()

    def _cross_prepare(self, cache: KVCache, cond: Conditioning, *, keys: bool = True) -> None:
        """Cross-attention keys and values of the conditioning, once a window, with the checkpoint's own k/v
        (with `keys` False, only the mask: the states are those whose keys the cache holds)."""
        states, mask, bias = cond.hidden_states, cond.attention_mask, cond.attention_bias
        if self.options.compile:
            # Pad to a bucket (masked) so prompts of other lengths reuse the compiled step.
            padded = -(-states.shape[1] // CROSS_BUCKET) * CROSS_BUCKET
            extra = padded - states.shape[1]
            if extra:
                if mask is None:
                    mask = torch.ones(states.shape[:2], dtype=torch.long, device=states.device)
                states = F.pad(states, (0, 0, 0, extra))
                mask = F.pad(mask, (0, extra))
                bias = F.pad(bias, (0, extra)) if bias is not None else None
        n, s, _ = states.shape
        for lw in self.layers if keys else ():
            k = lw.cross_kv.k_proj(states).view(n, s, self.heads, self.head_dim).transpose(1, 2)
            v = lw.cross_kv.v_proj(states).view(n, s, self.heads, self.head_dim).transpose(1, 2)
            cache.cross_keys.append(k.to(self.dtype).contiguous())
            cache.cross_values.append(v.to(self.dtype).contiguous())
        if (mask is not None and not bool(mask.all())) or bias is not None:
            blocked = mask == 0 if mask is not None else torch.zeros(states.shape[:2], dtype=torch.bool,
                                                                      device=states.device)
            # A row with nothing visible (the null condition) has all-zero states, so zero keys and
            # values (the projections have no bias): leave it unmasked rather than risk -inf rows in half precision.
            blocked = (blocked & ~blocked.all(dim=-1, keepdim=True))[:, None, None, :]
            cache.cross_mask = torch.zeros(blocked.shape, dtype=self.dtype, device=states.device)
            if bias is not None:
                cache.cross_mask += bias[:, None, None, :].to(self.dtype)
            cache.cross_mask.masked_fill_(blocked, torch.finfo(self.dtype).min)

    def swap_conditioning(self, cache: KVCache, cond: Conditioning, *, same_states: bool = False) -> None:
        """Attend to `cond` from the next step on: the cache's cross-attention keys and values are
        replaced between two steps (a jam's prompt change), its self-attention slots kept.

        `same_states`: `cond` has the hidden states the cache's keys came from and differs only in its
        mask or attention bias (a jam's prompt weights), so only the mask is rebuilt.
        """
        if cond.prefix:
            raise ValueError("prefix conditioning (melody checkpoints) is part of the cache; it cannot be swapped")
        if not same_states:
            cache.cross_keys.clear()
            cache.cross_values.clear()
        cache.cross_mask = None
        self._cross_prepare(cache, cond, keys=not same_states)
        if self._native is not None:
            self._native.forget()  # its structs point at the old tensors

    def warm_up(self, frames: int = 8) -> float:
        """A short unconditional generation, so the first request pays no lazy set-up; returns seconds."""
        from daemon.models.musicgen.conditioning import build_conditioning

        start = time.perf_counter()
        cond = build_conditioning(self.bundle, ["warm-up"], guidance_scale=3.0)
        params = GenerationParams(duration_s=frames / self.bundle.frame_rate, greedy=True)
        for _ in self.columns(cond, None, frames, params, None):
            pass
        took = time.perf_counter() - start
        log.info("%s engine %s warmed up in %.2f s", self.bundle.model_id, self.options.name, took)
        return took
