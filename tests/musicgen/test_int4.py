"""The int4 format and riffd's int4 kernel: quantisation error, the kernel against float64 math on the
same codes, the native int4 step against the Python one, agreement with float32, and the fallback."""

from __future__ import annotations

import pytest
import torch

from daemon.models.musicgen.options import EngineOptions
from daemon.models.musicgen.speed import Int4Linear, Int8Linear
from daemon.native import NativeUnavailable, int4_matvec
from tests.musicgen.test_native import assert_native_step_equals_python


def _kernel_runs_here() -> str | None:
    try:
        int4_matvec.pack(int4_matvec.quantize(torch.zeros(32, 32), 32))
    except NativeUnavailable as exc:
        return str(exc)
    return None


needs_kernel = pytest.mark.skipif(_kernel_runs_here() is not None, reason=f"native int4 kernel: {_kernel_runs_here()}")
INT4 = EngineOptions(weights="int4", warmup=False)


def test_quantize_rounds_each_group_to_bfloat16_scaled_levels():
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(64, 128, generator=generator) * torch.logspace(-3, 1, 64)[:, None]  # rows of every size
    weight[3, :32] = 0.0  # an all-zero group: scale 0, codes 8
    quantized = int4_matvec.quantize(weight, 32)
    assert quantized.codes.dtype == torch.uint8 and int(quantized.codes.max()) <= 15
    assert quantized.scales.dtype == torch.bfloat16 and quantized.scales.shape == (64, 4)
    assert bool((quantized.codes[3, :32] == 8).all()) and float(quantized.scales[3, 0]) == 0.0
    restored = quantized.dequantized()
    groups, steps = weight.view(64, 4, 32), quantized.scales.float().abs()[:, :, None]
    # Each weight is within half a step of its level (bfloat16 scales: within a hair of it), except
    # beyond 7.5 steps on the side opposite the group's extreme, which has 7 steps only: within one.
    error = (restored.view(64, 4, 32) - groups).abs()
    clipped = (groups / quantized.scales.float()[:, :, None]) > 7.5
    assert bool((error[~clipped] <= steps.expand_as(error)[~clipped] / 2 * 1.01 + 1e-12).all())
    assert bool((error[clipped] <= steps.expand_as(error)[clipped] * 1.01).all())
    assert torch.allclose(groups.abs().amax(-1), 8 * steps[..., 0], rtol=4e-3)
    gaussian = torch.randn(256, 1024, generator=generator)
    relative = float((int4_matvec.quantize(gaussian, 32).dequantized() - gaussian).norm() / gaussian.norm())
    assert 0.08 < relative < 0.09  # 16 levels on a Gaussian in groups of 32: about a twelfth of its spread


def int4_error_bound(x: torch.Tensor, weights: torch.Tensor, group: int) -> torch.Tensor:
    """|kernel - float64 math| for `x` `[m, k]` by `weights` `[n, k]` (float64) at most: activations are
    rounded to bytes per group of inputs, each off by at most half a step of the group's max|x| / 127,
    so an output by at most that times the group's sum of |weights|, summed over groups; the sums
    are exact in integers; float32 rounding of the groups' terms adds under 1e-5 of sum |x| |w|."""
    rows, cols = x.shape
    steps = x.double().abs().view(rows, cols // group, group).amax(dim=-1) / 127  # [m, groups]
    weight_sums = weights.abs().view(weights.shape[0], cols // group, group).sum(dim=-1)  # [n, groups]
    return 0.5 * steps @ weight_sums.T + 1e-5 * (x.double().abs() @ weights.abs().T)


@needs_kernel
@pytest.mark.parametrize("rows", [1, 2, 3, 4, 5, 9])
@pytest.mark.parametrize("shape, group", [((64, 32), 32), ((96, 1024), 64), ((256, 4096), 32), ((32, 48), 16)])
def test_int4_matvec_equals_float64_math_on_the_same_codes(rows, shape, group):
    generator = torch.Generator().manual_seed(rows)
    quantized = int4_matvec.quantize(torch.randn(shape, generator=generator) * 0.02, group)
    packed = int4_matvec.pack(quantized)
    unpacked = packed.unpacked()
    assert torch.equal(unpacked.codes, quantized.codes) and torch.equal(unpacked.scales, quantized.scales)
    assert torch.equal(packed.dequantized(), quantized.dequantized())  # C's (for prefills) and PyTorch's
    x = torch.randn((rows, shape[1]), generator=generator) * torch.logspace(-2, 1, shape[1])  # uneven magnitudes
    x[0, :7] = 0.0
    got = int4_matvec.matvec(x, packed)
    weights = quantized.dequantized(torch.float64)
    want = x.double() @ weights.T
    assert bool(((got.double() - want).abs() <= int4_error_bound(x, weights, group)).all())
    assert torch.count_nonzero(int4_matvec.matvec(torch.zeros((rows, shape[1])), packed)) == 0


@needs_kernel
def test_pack_refuses_what_the_kernel_cannot_take():
    for rows, cols, group in ((33, 64, 32), (32, 64, 8), (32, 96, 96), (32, 32768, 64)):
        with pytest.raises(NativeUnavailable, match="does not fit"):
            int4_matvec.pack(int4_matvec.Int4Weights(torch.zeros((rows, cols), dtype=torch.uint8),
                                                     torch.ones((rows, cols // group), dtype=torch.bfloat16), group))
    with pytest.raises(ValueError, match="float32"):
        int4_matvec.matvec(torch.zeros((2, 64), dtype=torch.bfloat16), int4_matvec.pack(int4_matvec.quantize(torch.randn(32, 64), 32)))


@needs_kernel
@pytest.mark.parametrize("preset, texts", [
    ("debug/musicgen", ["an upbeat jazz tune with a walking bass", "drums"]),  # 4 rows, masked cross-attention
    ("debug/musicgen-melody", ["folk guitar"]),  # no cross-attention
])
def test_native_int4_step_equals_the_python_int4_step(load_preset, preset, texts):
    native = assert_native_step_equals_python(load_preset(preset).bundle, INT4, texts, frames=30)
    weights = native.decoder.weights
    assert isinstance(weights.layers[0].fc1, Int4Linear)
    assert isinstance(weights.lm_heads, Int8Linear)  # int4 layers, int8 lm heads


def test_without_the_kernel_int4_multiplies_by_the_same_weights_on_pytorchs_kernel(monkeypatch):
    weight = torch.randn(64, 128)
    native = Int4Linear([weight])

    def unavailable(weights):
        raise NativeUnavailable("no kernel in this test")

    monkeypatch.setattr(int4_matvec, "pack", unavailable)
    fallback = Int4Linear([weight])
    assert fallback.packed is None
    assert torch.equal(fallback.dequantized(), native.dequantized())
    x = torch.randn(3, 128)
    want = x.double() @ fallback.dequantized().double().T
    # PyTorch's kernel takes bfloat16 activations: within a few of their rounding steps.
    assert float((fallback(x).double() - want).abs().max()) < 0.02 * float(want.abs().max())
