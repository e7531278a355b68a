"""The prior transformer: factored (block / transpose / previous-block) attention, prime and
cross attention, and the layer stack.

Two ways through every layer:
  forward(x)         a whole window from position 0 ([B, T, W], T a multiple of the block
                     length), as in training; optionally writes the keys to a `WindowCache`.
  step(x, position)  one new position [B, 1, W] against the cache: the sampling hot path.
Both compute the same function; `tests/jukebox` checks it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import BLOCK, CROSS, DENSE, PREV_BLOCK, PRIME, TRANSPOSE_BLOCK, PriorConfig, layer_attention
from .kv_cache import LayerCache, WindowCache

MASKED = -1e9  # the reference masks with a large finite negative, not -inf


class Conv1D(nn.Module):
    """A linear layer whose weight is stored [in, out] (GPT-2 style), as in the checkpoints."""

    def __init__(self, in_width: int, out_width: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(in_width, out_width))
        self.bias = nn.Parameter(torch.zeros(out_width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight)
        return out.view(*x.shape[:-1], self.weight.shape[1])


def activation(name: str):
    if name == "quick_gelu":
        return lambda x: x * torch.sigmoid(1.702 * x)
    if name == "gelu":
        return F.gelu
    if name == "relu":
        return torch.relu
    raise ValueError(f"unsupported Jukebox act_fn {name!r}")


class MLP(nn.Module):
    def __init__(self, config: PriorConfig):
        super().__init__()
        hidden = int(config.mlp_multiplier * config.hidden_size)
        self.c_fc = Conv1D(config.hidden_size, hidden)
        self.c_proj = Conv1D(hidden, config.hidden_size)
        self.act = activation(config.act_fn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(self.act(self.c_fc(x)))


def attention_probs(q: torch.Tensor, k: torch.Tensor, n_heads: int, causal: bool) -> torch.Tensor:
    """Attention probabilities [N, heads, Tq, Tk] of q [N, Tq, D] over k [N, Tk, D], float32 for
    half-precision inputs.

    `causal` lets query i see keys j <= i + (Tk - Tq) (all windows here start at position 0).
    """
    n, tq, width = q.shape
    tk = k.shape[1]
    head = width // n_heads
    q = q.view(n, tq, n_heads, head).transpose(1, 2)
    k = k.view(n, tk, n_heads, head).permute(0, 2, 3, 1)
    scale = head**-0.25  # the reference scales q and k by this each; kept for identical rounding
    weights = torch.matmul(q, k).mul_(scale * scale)
    if weights.dtype in (torch.float16, torch.bfloat16):
        weights = weights.float()  # softmax in float32 for half-precision priors
    if causal and tq > 1:
        allowed = torch.ones(tq, tk, dtype=torch.bool, device=q.device).tril(max(tk - tq, 0))
        weights = weights.masked_fill(~allowed, MASKED)
    return torch.softmax(weights, dim=-1)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, n_heads: int, causal: bool) -> torch.Tensor:
    """Multi-head attention of q [N, Tq, D] over k, v [N, Tk, D] -> [N, Tq, D] (see `attention_probs`)."""
    n, tq, width = q.shape
    v = v.view(n, v.shape[1], n_heads, width // n_heads).transpose(1, 2)
    probs = attention_probs(q, k, n_heads, causal).type_as(v)
    return torch.matmul(probs, v).transpose(1, 2).reshape(n, tq, width)


class Attention(nn.Module):
    """One attention layer of kind `kind` (see config.py) over a window of `n_ctx` positions."""

    def __init__(self, config: PriorConfig, n_ctx: int, kind: str):
        super().__init__()
        width = config.attention_width
        self.kind = kind
        self.n_heads = config.n_heads
        self.width = width
        self.n_ctx = n_ctx
        self.mask = config.mask
        self.block_ctx = n_ctx // config.blocks if config.blocks else n_ctx
        self.prefix_len = config.lyric_prefix_len if kind == PRIME else 0
        if kind == CROSS:
            self.c_attn = Conv1D(config.hidden_size, width)
            self.c_enc_kv = Conv1D(config.hidden_size, width * 2)
        else:
            self.c_attn = Conv1D(config.hidden_size, width * 3)
        self.c_proj = Conv1D(width, config.hidden_size)

    def new_cache(self, batch: int, device: torch.device, dtype: torch.dtype) -> LayerCache:
        return LayerCache.allocate(
            self.kind,
            batch=batch,
            width=self.width,
            n_ctx=self.n_ctx,
            block_ctx=self.block_ctx,
            prefix_len=self.prefix_len,
            device=device,
            dtype=dtype,
        )

    def _qkv(self, x: torch.Tensor, encoder_states: torch.Tensor | None):
        if self.kind == CROSS:
            if encoder_states is None:
                raise ValueError("a cross-attention layer needs the lyric encoder's states")
            k, v = self.c_enc_kv(encoder_states.type_as(x)).chunk(2, dim=2)
            return self.c_attn(x), k, v
        return self.c_attn(x).chunk(3, dim=2)

    def forward(
        self,
        x: torch.Tensor,
        encoder_states: torch.Tensor | None = None,
        cache: LayerCache | None = None,
        valid_len: int | None = None,
    ) -> torch.Tensor:
        """x [B, T, W] for positions 0..T-1 -> [B, T, W]; the first `valid_len` keys go to `cache`."""
        q, k, v = self._qkv(x, encoder_states)
        if cache is not None:
            if self.kind == CROSS:
                cache.write(0, k, v)
            else:
                n = x.shape[1] if valid_len is None else valid_len
                cache.write(0, k[:, :n], v[:, :n])
        return self.c_proj(self._full(q, k, v))

    def _full(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        batch, length, width = q.shape
        bc, heads, causal = self.block_ctx, self.n_heads, self.mask
        if self.kind in (DENSE, CROSS):
            return attend(q, k, v, heads, causal and self.kind == DENSE)
        if self.kind == PRIME:
            return attend(q, k[:, : self.prefix_len], v[:, : self.prefix_len], heads, causal)
        blocks = length // bc
        if self.kind == BLOCK:
            out = attend(*(t.reshape(batch * blocks, bc, width) for t in (q, k, v)), heads, causal)
            return out.view(batch, length, width)
        if self.kind == TRANSPOSE_BLOCK:
            # position p attends to p - bc, p - 2 bc, ...: attention along the block axis
            def columns(t: torch.Tensor) -> torch.Tensor:
                return t.view(batch, blocks, bc, width).transpose(1, 2).reshape(batch * bc, blocks, width)

            out = attend(columns(q), columns(k), columns(v), heads, causal)
            return out.view(batch, bc, blocks, width).transpose(1, 2).reshape(batch, length, width)
        if self.kind == PREV_BLOCK:
            # every block attends to the whole previous one; block 0 to a block of zeros
            def previous(t: torch.Tensor) -> torch.Tensor:
                t = t.view(batch, blocks, bc, width)[:, :-1]
                return F.pad(t, (0, 0, 0, 0, 1, 0)).reshape(batch * blocks, bc, width)

            out = attend(q.reshape(batch * blocks, bc, width), previous(k), previous(v), heads, causal=False)
            return out.view(batch, length, width)
        raise ValueError(f"unsupported attention kind {self.kind!r}")

    def lyric_probs(self, x: torch.Tensor, encoder_states: torch.Tensor | None = None) -> torch.Tensor:
        """Attention probabilities [B, heads, T, Tk] of a whole window's positions x [B, T, W] over the
        keys a lyric layer reads: the lyric prefix (prime) or the lyric encoder's states (cross), as
        `forward` computes them. What Jukebox's lyric alignment reads."""
        if self.kind not in (PRIME, CROSS):
            raise ValueError(f"a {self.kind} layer does not attend to the lyrics")
        q, k, _ = self._qkv(x, encoder_states)
        if self.kind == PRIME:
            return attention_probs(q, k[:, : self.prefix_len], self.n_heads, self.mask)
        return attention_probs(q, k, self.n_heads, causal=False)

    def step(self, x: torch.Tensor, position: int, cache: LayerCache, encoder_states=None) -> torch.Tensor:
        """x [B, 1, W] at `position` -> [B, 1, W], reading and extending `cache`."""
        if self.kind == CROSS:
            q = self.c_attn(x)
            if cache.keys is None:
                _, k, v = self._qkv(x, encoder_states)
                cache.write(0, k, v)
        else:
            q, k, v = self.c_attn(x).chunk(3, dim=2)
            cache.write_one(position, k, v)
        seen = cache.read(position)
        if seen is None:
            # the previous block of block 0 is all zeros: softmax of equal scores times zero values
            context = torch.zeros_like(q)
        else:
            context = attend(q, seen[0], seen[1], self.n_heads, causal=False)
        return self.c_proj(context)


class Block(nn.Module):
    """Pre-norm transformer block: attention and MLP, residuals summed as the reference does."""

    def __init__(self, config: PriorConfig, n_ctx: int, kind: str):
        super().__init__()
        self.attn = Attention(config, n_ctx, kind)
        self.layer_norm_0 = nn.LayerNorm(config.hidden_size, eps=1e-5)
        self.mlp = MLP(config)
        self.layer_norm_1 = nn.LayerNorm(config.hidden_size, eps=1e-5)
        self.res_scale = 1.0 / config.num_layers if config.attn_res_scale else 1.0

    def _finish(self, x: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
        mlp_out = self.mlp(self.layer_norm_1(x + attended))
        if self.res_scale == 1.0:
            return x + attended + mlp_out
        return x + self.res_scale * (attended + mlp_out)

    def forward(self, x, encoder_states=None, cache: LayerCache | None = None, valid_len: int | None = None):
        return self._finish(x, self.attn(self.layer_norm_0(x), encoder_states, cache, valid_len))

    def step(self, x, position: int, cache: LayerCache, encoder_states=None):
        return self._finish(x, self.attn.step(self.layer_norm_0(x), position, cache, encoder_states))


class LayerStack(nn.Module):
    """`num_layers` blocks whose attention kinds follow the config's `attention_pattern`."""

    def __init__(self, config: PriorConfig, n_ctx: int):
        super().__init__()
        self.n_ctx = n_ctx
        self.block_ctx = n_ctx // config.blocks if config.blocks else n_ctx
        kinds = [layer_attention(config.attention_pattern, i) for i in range(config.num_layers)]
        self._attn_mods = nn.ModuleList(Block(config, n_ctx, kind) for kind in kinds)

    def new_cache(self, batch: int, device: torch.device, dtype: torch.dtype) -> WindowCache:
        return WindowCache([layer.attn.new_cache(batch, device, dtype) for layer in self._attn_mods], batch)

    def forward(
        self,
        x: torch.Tensor,
        encoder_states: torch.Tensor | None = None,
        cache: WindowCache | None = None,
    ) -> torch.Tensor:
        """x [B, T, W] for positions 0..T-1 -> [B, T, W]. Fills `cache` with those T positions.

        T is padded up to whole blocks; with causal masks the padding is never seen by the
        real positions.
        """
        length = x.shape[1]
        padded = -(-length // self.block_ctx) * self.block_ctx
        if padded != length:
            x = F.pad(x, (0, 0, 0, padded - length))
        for i, layer in enumerate(self._attn_mods):
            x = layer(x, encoder_states, None if cache is None else cache.layers[i], length)
        if cache is not None:
            cache.position = length
        return x[:, :length]

    def lyric_probs(self, x: torch.Tensor, layer: int, encoder_states: torch.Tensor | None = None) -> torch.Tensor:
        """Layer `layer`'s attention probabilities [B, heads, T, Tk] over the lyrics, for a whole
        window x [B, T, W] from position 0 (the layers after it are not run)."""
        length = x.shape[1]
        padded = -(-length // self.block_ctx) * self.block_ctx
        if padded != length:
            x = F.pad(x, (0, 0, 0, padded - length))
        for block in self._attn_mods[:layer]:
            x = block(x, encoder_states, None, length)
        target = self._attn_mods[layer]
        return target.attn.lyric_probs(target.layer_norm_0(x), encoder_states)[:, :, :length]

    def step(self, x: torch.Tensor, cache: WindowCache, encoder_states=None) -> torch.Tensor:
        """x [B, 1, W] at `cache.position` -> [B, 1, W]; advances the cache by one position."""
        position = cache.position
        if position >= self.n_ctx:
            raise ValueError(f"window is full ({self.n_ctx} positions)")
        for layer, layer_cache in zip(self._attn_mods, cache.layers):
            x = layer.step(x, position, layer_cache, encoder_states)
        cache.position = position + 1
        return x
