"""The native engines' window prefill: riffd's self- and cross-attention (`prefill_attention.c`) against
float64 math, and the engines' prefill running them and riffd's GELU (float32 engines never do)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from daemon.models.musicgen.conditioning import build_conditioning
from daemon.models.musicgen.engine import MusicgenEngine
from daemon.models.musicgen.options import EngineOptions
from daemon.native import gelu, prefill_attention
from tests.musicgen.test_native import _kernel_runs_here

pytestmark = pytest.mark.skipif(_kernel_runs_here() is not None, reason=f"native kernels: {_kernel_runs_here()}")


def _qkv(rows: int, heads: int, frames: int, length: int, dim: int, seed: int):
    """q as the prefill has it (a strided view of the qkv projection's output), contiguous keys and values."""
    generator = torch.Generator().manual_seed(seed)
    q = torch.randn(rows, frames, 3, heads, dim, generator=generator).permute(2, 0, 3, 1, 4)[0]
    keys = torch.randn(rows, heads, length, dim, generator=generator) * 2
    values = torch.randn(rows, heads, length, dim, generator=generator)
    return q, keys, values


def _reference(q, keys, values):
    """float64 softmax(q.K / sqrt(d)) V, query i at slot L - T + i seeing slots up to its own, as [N, T, heads * d]."""
    frames, length = q.shape[2], keys.shape[2]
    visible = torch.arange(length)[None, :] <= torch.arange(length - frames, length)[:, None]
    scores = (q.double() @ keys.double().transpose(-1, -2)) / q.shape[-1] ** 0.5
    out = torch.softmax(scores.masked_fill(~visible, float("-inf")), dim=-1) @ values.double()
    return out.transpose(1, 2).reshape(q.shape[0], frames, -1)


@pytest.mark.parametrize("dim", [16, 32, 64, 128])
@pytest.mark.parametrize("frames,length", [(1, 1), (3, 3), (5, 5), (37, 37), (70, 133), (1, 90), (130, 130)])
def test_causal_attention_equals_float64_math(dim, frames, length):
    q, keys, values = _qkv(2, 3, frames, length, dim, seed=frames * 1000 + length + dim)
    assert prefill_attention.fits(q, keys, values)
    got = prefill_attention.causal_attention(q, keys, values)
    want = _reference(q, keys, values)
    assert got.shape == want.shape and got.dtype == torch.float32
    # float32 sums in another order than PyTorch's: measured within 1.3e-6 (values ~N(0, 1)); PyTorch's
    # own float32 kernel lands as far from float64.
    assert (got.double() - want).abs().max().item() <= 4e-6
    if length == frames:
        torch_f32 = F.scaled_dot_product_attention(q, keys, values, is_causal=True).transpose(1, 2).reshape(got.shape)
        assert (torch_f32.double() - want).abs().max().item() <= 4e-6


def test_each_head_is_its_own_whatever_shares_the_call():
    q, keys, values = _qkv(2, 4, 21, 21, 64, seed=7)
    together = prefill_attention.causal_attention(q, keys, values)
    for row in range(2):
        alone = prefill_attention.causal_attention(q[row:row + 1], keys[row:row + 1].contiguous(),
                                                   values[row:row + 1].contiguous())
        assert torch.equal(together[row:row + 1], alone)


def test_what_the_kernel_does_not_take_is_refused():
    q, keys, values = _qkv(1, 2, 4, 4, 48, seed=1)
    assert not prefill_attention.fits(q, keys, values)  # a head size not built
    with pytest.raises(ValueError, match="cannot take"):
        prefill_attention.causal_attention(q, keys, values)
    q, keys, values = _qkv(1, 2, 4, 4, 64, seed=1)
    assert not prefill_attention.fits(q.double(), keys.double(), values.double())
    assert not prefill_attention.fits(q, keys.transpose(2, 3), values)  # keys not contiguous
    assert not prefill_attention.fits(q, keys[:, :, :3].contiguous(), values[:, :, :3].contiguous())  # fewer keys
    assert not prefill_attention.fits(q.transpose(2, 3), keys, values)  # q's head values not adjacent


def _prefill_logits(engine: MusicgenEngine, bundle, frames: int) -> torch.Tensor:
    """The logits after a guided window's prefill of `frames` known columns (a later window's context)."""
    cond = build_conditioning(bundle, ["an upbeat jazz tune with a walking bass"], guidance_scale=3.0)
    inputs = torch.randint(0, bundle.pad_token_id, (1, bundle.num_codebooks, frames),
                           generator=torch.Generator().manual_seed(frames))
    with engine.decoder.open_cache(cond.hidden_states.shape[0], frames + 4) as cache:
        return engine.decoder.prefill(cache, cond, inputs)


@pytest.mark.parametrize("weights", ["int8", "int8a8"])
def test_native_engines_prefill_through_riffd_attention_and_gelu(load_preset, monkeypatch, weights):
    bundle = load_preset("debug/musicgen").bundle
    engine = MusicgenEngine(bundle, EngineOptions(weights=weights, warmup=False))
    assert engine.decoder.native is not None
    layers = len(engine.decoder.weights.layers)
    calls: list[str] = []
    attention, masked, gelu_ = prefill_attention.causal_attention, prefill_attention.masked_attention, gelu.gelu_
    monkeypatch.setattr(prefill_attention, "causal_attention", lambda *a: calls.append("attention") or attention(*a))
    monkeypatch.setattr(prefill_attention, "masked_attention", lambda *a: calls.append("cross") or masked(*a))
    monkeypatch.setattr(gelu, "gelu_", lambda x: calls.append("gelu") or gelu_(x))
    riffd = _prefill_logits(engine, bundle, 23)
    assert calls.count("attention") == calls.count("cross") == calls.count("gelu") == layers
    # PyTorch's attention and GELU on the same window: the same scores within float32 rounding
    monkeypatch.setattr(prefill_attention, "fits", lambda *_, **__: False)
    monkeypatch.setattr(gelu, "fits", lambda *_: False)
    torch_scores = _prefill_logits(engine, bundle, 23)
    assert calls.count("attention") == layers
    scale = torch_scores.abs().max().item()
    assert (riffd - torch_scores).abs().max().item() <= 1e-4 * scale
    assert torch.equal(riffd.argmax(dim=-1), torch_scores.argmax(dim=-1))


def test_float32_prefill_stays_pytorchs(load_preset, monkeypatch):
    """The float32 engine is bit-exact with transformers: its prefill never calls riffd's kernels."""
    bundle = load_preset("debug/musicgen").bundle
    engine = MusicgenEngine(bundle, EngineOptions(warmup=False))
    monkeypatch.setattr(prefill_attention, "causal_attention", lambda *a: pytest.fail("riffd attention in float32"))
    monkeypatch.setattr(prefill_attention, "masked_attention", lambda *a: pytest.fail("riffd attention in float32"))
    monkeypatch.setattr(gelu, "gelu_", lambda x: pytest.fail("riffd GELU in float32"))
    _prefill_logits(engine, bundle, 9)


@pytest.mark.parametrize("dim", [16, 64])
@pytest.mark.parametrize("frames,length", [(1, 1), (37, 5), (70, 12), (9, 90)])
def test_masked_attention_equals_float64_math(dim, frames, length):
    """The cross-attention: every query sees every key, an additive mask per row (blocked keys at the
    dtype's minimum, a jam's prompt weights as a bias)."""
    q, keys, values = _qkv(3, 2, frames, length, dim, seed=frames * 100 + length + dim)
    mask = torch.randn(3, 1, 1, length, generator=torch.Generator().manual_seed(length))
    mask[0, ..., length // 2:] = torch.finfo(torch.float32).min  # a shorter prompt's padding
    mask[2] = 0.0  # the null condition: nothing masked
    for m in (mask, None):
        got = prefill_attention.masked_attention(q, keys, values, m)
        scores = (q.double() @ keys.double().transpose(-1, -2)) / dim ** 0.5
        if m is not None:
            scores = scores + m.double()
        want = (torch.softmax(scores, dim=-1) @ values.double()).transpose(1, 2).reshape(3, frames, -1)
        assert (got.double() - want).abs().max().item() <= 4e-6
    assert not prefill_attention.fits(q, keys, values, causal=False, mask=mask.double())
    assert not prefill_attention.fits(q, keys, values, causal=False, mask=mask[:, :, :, :-1])
    assert not prefill_attention.fits(q, keys, values, causal=True, mask=mask)
    with pytest.raises(ValueError, match="cannot take"):
        prefill_attention.masked_attention(q, keys, values, mask[:2])
