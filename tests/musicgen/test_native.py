"""riffd's native int8 kernels: the matrix-vector product against float64 math on the same codes,
the one-call decode step against the engine's Python step on the same weights, the build cache,
and the fallback when no compiler is there."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from daemon.models.musicgen import folded_condition
from daemon.models.musicgen.agreement import compare
from daemon.models.musicgen.conditioning import build_conditioning
from daemon.models.musicgen.engine import MusicgenEngine
from daemon.models.musicgen.options import EngineOptions
from daemon.models.musicgen.speed import Int8Linear
from daemon.native import NativeUnavailable, cache_dir, int8_matvec, isa, library
from daemon.native.branches import Branch, runnable_here
from daemon.native.decoder_step import bind_row
from protocol.params import GenerationParams


def _kernel_runs_here() -> str | None:
    try:
        int8_matvec.pack(torch.zeros((32, 16), dtype=torch.int8), torch.ones(32))
    except NativeUnavailable as exc:
        return str(exc)
    return None


# Any x86 CPU with AVX2 and a C compiler runs these; elsewhere they say why they cannot run.
pytestmark = pytest.mark.skipif(_kernel_runs_here() is not None, reason=f"native int8 kernel: {_kernel_runs_here()}")

INT8 = EngineOptions(weights="int8", warmup=False)


@pytest.mark.parametrize("rows", [1, 2, 3, 4, 5, 9, 16])
@pytest.mark.parametrize("shape", [(64, 32), (96, 1024), (1024, 4096)])
def test_matvec_equals_float64_math_on_the_same_codes(rows, shape):
    generator = torch.Generator().manual_seed(rows)
    codes = torch.randint(-127, 128, shape, dtype=torch.int8, generator=generator)
    scales = torch.rand(shape[0], generator=generator) * 0.01 + 1e-4
    x = torch.randn((rows, shape[1]), generator=generator) * torch.logspace(-2, 1, shape[1])  # uneven magnitudes
    x[0, :7] = 0.0
    packed = int8_matvec.pack(codes, scales)
    assert torch.equal(packed.codes(), codes)
    got = int8_matvec.matvec(x, packed)
    want = (x.double() @ codes.double().T) * scales.double()
    # Activations carried at 16 bits: each off by at most half a step of max|x| / 32767, so an
    # output by at most that times its row's sum of |weights|, plus float32 rounding.
    step = x.double().abs().amax(dim=1, keepdim=True) / 32767
    bound = 0.5 * step * (codes.double().abs().sum(dim=1) * scales.double())[None, :] + 1e-5 * want.abs().max()
    assert bool(((got.double() - want).abs() <= bound).all())
    zero = int8_matvec.matvec(torch.zeros((rows, shape[1])), packed)
    assert torch.count_nonzero(zero) == 0


@pytest.mark.parametrize("copies", [1, 13])
def test_matvec_is_exact_at_the_extremes_no_saturation_no_overflow(copies):
    """The largest codes times the largest activations over the most columns: where a 16-bit product
    sum would saturate (AVX2's maddubs) or an int32 sum overflow, the result would be far off. 13
    copies of the rows over 4096 columns (39 rows: a chunk of 32, past a decode step's 16, then 7) take
    the prefill's path (on AVX2: tiles of interleaved rows against widened weights, a slice of 1024
    inputs at a time), with the bits those rows get alone."""
    k = int8_matvec._library().riffd_int8_max_k() if copies == 1 else 4096
    codes = torch.full((64, k), 127, dtype=torch.int8)
    codes[1::4] = -128
    codes[2::4, ::2] = -128  # alternating signs: large partial sums that cancel
    codes[3::4, : k // 2] = -128
    scales = torch.full((64,), 1e-3)
    x = torch.full((3, k), 2.5)
    x[1, ::3] = -2.5
    x[2] = torch.linspace(-1, 1, k)
    packed = int8_matvec.pack(codes, scales)
    got = int8_matvec.matvec(x.repeat(copies, 1), packed)
    assert torch.equal(got, int8_matvec.matvec(x, packed).repeat(copies, 1))
    got = got[:3].double()
    want = (x.double() @ codes.double().T) * 1e-3
    step = x.double().abs().amax(dim=1, keepdim=True) / 32767
    bound = 0.5 * step * codes.double().abs().sum(dim=1)[None, :] * 1e-3 + 1e-6 * want.abs().amax()
    assert bool(((got - want).abs() <= bound).all())


def int8a8_specified(x: torch.Tensor, codes: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """What the int8a8 kernel must give, bit for bit, on every branch: each row quantised on its own
    (s = max|x| / 127 and q = round(x * (1 / s)) in float32, ties to even), exact integer sums
    (float64 holds them exactly: |sum| < 2^53), then float(sum) * (scale * s) in float32."""
    largest = x.abs().amax(dim=1, keepdim=True)
    s = torch.where(largest > 0, largest / 127.0, torch.ones_like(largest))
    q = torch.round(x * (1.0 / s)).clamp(-127, 127)
    sums = q.double() @ codes.double().T
    return sums.float() * (scales[None, :] * s)


@pytest.mark.parametrize("rows", [1, 2, 5, 9, 16, 17])
@pytest.mark.parametrize("shape", [(64, 32), (96, 1024), (1024, 4096)])
def test_int8a8_matvec_gives_its_specified_bits_within_its_bound_of_float64_math(rows, shape):
    """The 8-bit-activation kernel: exactly the bits its specification gives (so every branch gives
    the same bits, and a row's result does not depend on the rows beside it), and within half a
    step of max|x| / 127 times the row's sum of |weights| (plus float32 rounding) of float64 math."""
    generator = torch.Generator().manual_seed(rows)
    codes = torch.randint(-127, 128, shape, dtype=torch.int8, generator=generator)
    scales = torch.rand(shape[0], generator=generator) * 0.01 + 1e-4
    x = torch.randn((rows, shape[1]), generator=generator) * torch.logspace(-2, 1, shape[1])
    x[0, :7] = 0.0
    packed = int8_matvec.pack(codes, scales, activation_bits=8)
    got = int8_matvec.matvec(x, packed)
    assert torch.equal(got, int8a8_specified(x, codes, scales))
    want = (x.double() @ codes.double().T) * scales.double()
    step = x.double().abs().amax(dim=1, keepdim=True) / 127
    bound = 0.5 * step * (codes.double().abs().sum(dim=1) * scales.double())[None, :] + 1e-5 * want.abs().max()
    assert bool(((got.double() - want).abs() <= bound).all())
    # 8 bits really are coarser than int8's 16: the two kernels differ on the same weights
    assert not torch.equal(got, int8_matvec.matvec(x, int8_matvec.pack(codes, scales)))
    assert torch.count_nonzero(int8_matvec.matvec(torch.zeros((rows, shape[1])), packed)) == 0


def test_rows_through_the_tile_unit_get_their_bits_alone_beside_pytorchs_own_tile_use():
    """Where a product's rows are many enough (`int8_matvec.tile_rows()`, AMX CPUs), int8_matvec.c
    multiplies them on the tile unit: each row's outputs must be the bits it gets alone (one row:
    VNNI), with 16- and 8-bit activations, more rows than a tile holds (16), a prefill's chunk, and k
    not a multiple of 64 (VNNI whatever the rows). PyTorch multiplies in bfloat16 on the same thread
    between the calls (oneDNN's AMX kernels load their own tile configuration and release it): a product
    that trusted a configuration loaded by an earlier call of its own faulted there (SIGILL) on its first
    tile instruction. On other CPUs and branches the same checks run on VNNI alone."""
    from daemon.native.branches import cpu_flags

    tiles = int8_matvec.tile_rows()
    if "amx_int8" in cpu_flags() and isa() == "avx512vnni" and "RIFFD_NO_AMX" not in os.environ.get(
            "RIFFD_NATIVE_CFLAGS", ""):
        assert tiles == 6  # int8_matvec.c's AMX_MIN_ROWS
    else:
        assert tiles == 0
    generator = torch.Generator().manual_seed(11)
    a = torch.randn(64, 512, generator=generator).bfloat16()
    b = torch.randn(512, 512, generator=generator).bfloat16()
    threads = torch.get_num_threads()
    try:
        for used in (1, threads):
            torch.set_num_threads(used)
            for bits in (16, 8):
                for n, k in ((96, 1024), (64, 4096), (64, 80)):
                    codes = torch.randint(-128, 128, (n, k), dtype=torch.int8, generator=generator)
                    packed = int8_matvec.pack(codes, torch.rand(n, generator=generator) + 0.01, activation_bits=bits)
                    for rows in (6, 16, 23, 300):
                        x = torch.randn(rows, k, generator=generator)
                        torch.matmul(a, b)  # oneDNN, on this thread too
                        together = int8_matvec.matvec(x, packed)
                        # every row of one or two tiles' worth (each tile's rows, not only its first), then
                        # every 37th and the last of a chunk
                        picked = list(range(rows)) if rows <= 2 * 16 else [*range(0, rows, 37), rows - 1]
                        alone = torch.cat([int8_matvec.matvec(x[r:r + 1], packed) for r in picked])
                        assert torch.equal(together[picked], alone), (used, bits, n, k, rows)
    finally:
        torch.set_num_threads(threads)


def test_int8a8_matvec_is_exact_at_the_extremes_no_saturation_no_overflow():
    """Codes of -128 and 127 times activations of +-127 over the most columns: AVX2's byte products
    (|w| x sign-carrying x, pairs in int16) would saturate past 32767, VNNI's offset sums overflow
    int32, if the bounds were wrong; either would change the bits."""
    k = int8_matvec._library().riffd_int8_max_k()
    codes = torch.full((64, k), 127, dtype=torch.int8)
    codes[1::4] = -128
    codes[2::4, ::2] = -128
    codes[3::4, : k // 2] = -128
    scales = torch.full((64,), 1e-3)
    x = torch.full((4, k), 2.5)
    x[1, ::3] = -2.5
    x[2] = torch.linspace(-1, 1, k)
    x[3, 1::2] = -2.5
    got = int8_matvec.matvec(x, int8_matvec.pack(codes, scales, activation_bits=8))
    assert torch.equal(got, int8a8_specified(x, codes, scales))
    with pytest.raises(ValueError, match="bits"):
        int8_matvec.pack(codes, scales, activation_bits=4)


@pytest.mark.parametrize("activation_bits", [16, 8])
def test_matvec_rows_are_independent_bit_for_bit(activation_bits):
    """A row's outputs do not depend on which other rows share the call (continuous batching)."""
    generator = torch.Generator().manual_seed(5)
    codes = torch.randint(-127, 128, (96, 2048), dtype=torch.int8, generator=generator)
    packed = int8_matvec.pack(codes, torch.rand(96, generator=generator) * 0.01, activation_bits)
    x = torch.randn((17, 2048), generator=generator) * torch.logspace(-1, 1, 17)[:, None]
    together = int8_matvec.matvec(x, packed)
    for row in (0, 5, 16):
        assert torch.equal(int8_matvec.matvec(x[row:row + 1], packed)[0], together[row])
    assert torch.equal(int8_matvec.matvec(x[3:9], packed), together[3:9])
    assert torch.equal(int8_matvec.matvec(x.flip(0), packed), together.flip(0))


@pytest.mark.parametrize("activation_bits", [16, 8])
@pytest.mark.parametrize("cols", [1024, 4096])
def test_a_prefills_many_rows_get_the_bits_each_row_gets_in_a_step(activation_bits, cols):
    """Hundreds of rows (a long-form window's prefill) go through the kernel in cache-sized chunks
    (int8_matvec.c's rows_per_read: 32 to 256 rows by the row's bytes, several chunks here and a
    ragged last one); every row's outputs are the bits a decode step's few rows get."""
    generator = torch.Generator().manual_seed(cols + activation_bits)
    codes = torch.randint(-127, 128, (64, cols), dtype=torch.int8, generator=generator)
    packed = int8_matvec.pack(codes, torch.rand(64, generator=generator) * 0.01, activation_bits)
    x = torch.randn((301, cols), generator=generator) * torch.logspace(-2, 1, 301)[:, None]
    x[7] = 0.0
    many = int8_matvec.matvec(x, packed)
    few = torch.cat([int8_matvec.matvec(part, packed) for part in x.split(2)])
    assert torch.equal(many, few)
    assert torch.count_nonzero(many[7]) == 0


def test_pack_refuses_shapes_outside_its_blocks_and_int8_falls_back():
    for rows, cols in ((36, 64), (32, 36), (32, 32768)):
        with pytest.raises(NativeUnavailable, match="does not fit"):
            int8_matvec.pack(torch.zeros((rows, cols), dtype=torch.int8), torch.ones(rows))
    with pytest.raises(ValueError, match="float32"):
        int8_matvec.matvec(torch.zeros((2, 64), dtype=torch.bfloat16),
                           int8_matvec.pack(torch.zeros((32, 64), dtype=torch.int8), torch.ones(32)))
    weight = torch.randn(36, 64)
    odd = Int8Linear([weight])  # 36 rows (no whole block): PyTorch's int8 kernel instead
    assert odd.packed is None
    x = torch.randn(2, 64)
    assert torch.allclose(odd(x), x @ weight.T, atol=0.05 * (x @ weight.T).abs().max())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_dense_kernel_equals_float64_math_and_the_bfloat16_mode_uses_it(dtype):
    """riffd's float32/bfloat16 kernel (f32_matmul.c) on this build's branch, against float64 maths on
    the same weights; the bfloat16 mode's projections take it for a decode step's rows (x86)."""
    from daemon.models.musicgen.speed import DenseLinear
    from daemon.native import f32_matmul

    generator = torch.Generator().manual_seed(3)
    weight = (torch.randn(96, 1024, generator=generator) * 0.05).to(dtype)
    for rows in (1, 2, 5, 12, 13):
        x = torch.randn((rows, 1024), generator=generator) * torch.logspace(-2, 1, 1024)
        got = f32_matmul.matmul(x, weight)
        want = x.double() @ weight.double().T
        # float32 sums of exact products (bfloat16 weights widen exactly): within 1e-5 of sum |x w|.
        assert bool(((got.double() - want).abs() <= 1e-5 * (x.double().abs() @ weight.double().abs().T)).all())
    bf16 = DenseLinear([weight[:64].bfloat16(), weight[64:].bfloat16()], torch.bfloat16, native_bf16=True)
    x = torch.randn((1, 2, 1024), generator=generator).bfloat16()
    assert bf16(x).dtype == torch.bfloat16 and bf16(x).shape == (1, 2, 96)
    # The kernel's float32 sums rounded once to bfloat16: at most half a bfloat16 step from exact.
    exact = x.double() @ weight.bfloat16().double().T
    assert bool(((bf16(x).double() - exact).abs() <= exact.abs() * 2.0**-8 + 1e-6).all())
    assert torch.equal(bf16(x)[0], f32_matmul.matmul(x[0], bf16.parts[0]).bfloat16())  # the kernel ran
    with pytest.raises(ValueError, match="f32 matmul"):
        f32_matmul.matmul(x[0], weight[:, :1000])


def _lstm_reference(gates: torch.Tensor, weight: torch.Tensor, h: torch.Tensor,
                    c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The LSTM recurrence in float64 over `gates` [steps, batch, 4H] with recurrent `weight` [4H, H]
    (PyTorch's gate order i, f, g, o): every step's hidden state, and the last cell state."""
    want_h, want_c, wants = h.double(), c.double(), []
    for step in gates.double():
        i, f, g, o = (step + want_h @ weight.double().T).chunk(4, dim=-1)
        want_c = torch.sigmoid(f) * want_c + torch.sigmoid(i) * torch.tanh(g)
        want_h = torch.sigmoid(o) * torch.tanh(want_c)
        wants.append(want_h)
    return torch.stack(wants), want_c


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_lstm_kernel_equals_float64_math(dtype):
    """lstm.c's recurrence (the streaming codec's LSTM) on this build's branch against float64 maths on
    the same weights: mono and stereo rows, the state carried across calls."""
    from daemon.native import lstm

    generator = torch.Generator().manual_seed(5)
    hidden = 8 * lstm.unit_multiple()
    weight = (torch.randn(4 * hidden, hidden, generator=generator) * hidden ** -0.5).to(dtype)
    for batch in (1, 2):
        gates = torch.randn((9, batch, 4 * hidden), generator=generator) * 2
        h, c = torch.randn((batch, hidden), generator=generator), torch.randn((batch, hidden), generator=generator)
        wants, want_c = _lstm_reference(gates, weight, h, c)
        first, mid_c = lstm.lstm_steps(gates[:4], weight, h, c)  # two calls: the state carries over
        rest, got_c = lstm.lstm_steps(gates[4:], weight, first[-1], mid_c)
        got = torch.cat([first, rest])
        # float32 sums of exact products, e^x to 2e-7: within 2e-6 after nine steps.
        assert (got.double() - wants).abs().max() <= 2e-6
        assert (got_c.double() - want_c).abs().max() <= 2e-6
    assert not lstm.fits(weight[:, :-1].contiguous())
    with pytest.raises(ValueError, match="lstm_steps"):
        lstm.lstm_steps(gates, weight, h[:, :-1], c)


def test_lstm_int8_kernel_equals_float64_math_on_its_codes():
    """lstm.c's recurrence on int8 weights (approximate engines' codec LSTM) against float64 maths on
    the dequantised weights: mono and stereo rows, the state carried across calls."""
    from daemon.native import lstm

    generator = torch.Generator().manual_seed(6)
    hidden = 8 * lstm.unit_multiple()
    weight = torch.randn(4 * hidden, hidden, generator=generator) * hidden ** -0.5
    scales = weight.abs().amax(dim=1) / 127
    try:
        packed = int8_matvec.pack(torch.round(weight / scales[:, None]).to(torch.int8), scales)
    except NativeUnavailable:
        pytest.skip("riffd's int8 kernel does not run here")
    exact = packed.dequantized().double()
    for batch in (1, 2):
        gates = torch.randn((9, batch, 4 * hidden), generator=generator) * 2
        h, c = torch.randn((batch, hidden), generator=generator), torch.randn((batch, hidden), generator=generator)
        wants, want_c = _lstm_reference(gates, exact, h, c)
        first, mid_c = lstm.lstm_steps_int8(gates[:4], packed, h, c)  # two calls: the state carries over
        rest, got_c = lstm.lstm_steps_int8(gates[4:], packed, first[-1], mid_c)
        got = torch.cat([first, rest])
        # The hidden state enters each product at 16 bits (a step of max|h| / 32767), the rest is exact
        # integer sums and float32's: 3.4e-5 at most seen (the float32 weights, not the codes: ~1e-3).
        assert (got.double() - wants).abs().max() <= 1e-4
        assert (got_c.double() - want_c).abs().max() <= 1e-4
    with pytest.raises(ValueError, match="lstm_steps_int8"):
        lstm.lstm_steps_int8(gates, packed, h[:, :-1], c)


def test_conv_taps_kernel_matches_float64_math_and_the_codec_takes_it(monkeypatch):
    """conv_taps.c on this build's branch (the codec's convolutions of few outputs) against float64
    maths: one to four outputs, dilation, lengths that are not whole blocks of outputs, a batch; and
    a codec convolution of one output runs it, pushed whole or in pieces with the same samples."""
    from daemon.models.musicgen.encodec_stages import Conv, ConvSpec
    from daemon.native import conv_taps

    if not conv_taps.channel_multiple():
        pytest.skip("riffd's kernels do not run here")
    generator = torch.Generator().manual_seed(7)
    channels = 4 * conv_taps.channel_multiple()
    for out, kernel, dilation, n in ((1, 7, 1, 1000), (2, 3, 2, 37), (4, 1, 1, 5), (3, 5, 3, 1)):
        weight, bias = torch.randn(out, channels, kernel, generator=generator), torch.randn(out, generator=generator)
        x = torch.randn(2, n + (kernel - 1) * dilation, channels, generator=generator)
        got = conv_taps.conv(x, weight.permute(0, 2, 1).contiguous(), bias, dilation)
        want = F.conv1d(x.transpose(1, 2).double(), weight.double(), bias.double(), dilation=dilation).transpose(1, 2)
        # float32 sums of kernel * channels products of ~1: rounding well under 1e-5 of their size
        assert got.shape == want.shape and (got.double() - want).abs().max() <= 1e-5 * (kernel * channels) ** 0.5
    spec = ConvSpec(torch.randn(1, channels, 7, generator=generator), torch.randn(1, generator=generator), 1, 3, 3,
                    "reflect")
    assert spec.tap_major is not None
    x = torch.randn(1, 300, channels, generator=generator)
    ran = []
    real = conv_taps.conv
    monkeypatch.setattr(conv_taps, "conv", lambda *args: ran.append(1) or real(*args))
    whole, pieces = Conv(spec, 1), Conv(spec, 1)
    one = torch.cat([whole.push(x), whole.flush()], dim=1)
    parts = [pieces.push(x[:, i:i + size]) for i, size in ((0, 2), (2, 5), (7, 1), (8, 200), (208, 92))]
    assert ran and torch.equal(one, torch.cat([*parts, pieces.flush()], dim=1))
    reference = F.conv1d(F.pad(x.transpose(1, 2), (3, 3), "reflect"), spec.weight, spec.bias).transpose(1, 2)
    assert (one - reference).abs().max() <= 1e-4


def _unit_reference(x: torch.Tensor, conv: torch.Tensor, conv_bias: torch.Tensor | None, dilation: int, shortcut: int,
                    alpha_in: float, pointwise: torch.Tensor, pointwise_bias: torch.Tensor | None,
                    alpha_hidden: float) -> tuple[torch.Tensor, torch.Tensor]:
    """A residual unit in float64 (`[B, n, C]` from its padded time-major inputs) and the bound on
    float32 sums of its terms: 1e-5 of the sums of |terms|; each ELU's 2e-7 * alpha, the input's
    carried through the wide convolution's |weights|, the hidden values' through the second ELU
    (1-Lipschitz for alpha <= 1) and the 1x1 weights."""
    x64 = x.transpose(1, 2).double()
    conv64, point64 = conv.double(), pointwise.double()
    cb = None if conv_bias is None else conv_bias.double()
    act = F.elu(x64, alpha_in)
    hidden = F.conv1d(act, conv64, cb, dilation=dilation)
    hidden_bound = (1e-5 * F.conv1d(act.abs(), conv64.abs(), None if cb is None else cb.abs(), dilation=dilation)
                    + F.conv1d(torch.full_like(act, 2e-7 * alpha_in), conv64.abs(), dilation=dilation)
                    + 2e-7 * alpha_hidden)
    elu = F.elu(hidden, alpha_hidden)
    n = hidden.shape[-1]
    out = x64[..., shortcut:shortcut + n] + F.conv1d(elu, point64, None if pointwise_bias is None else pointwise_bias.double())
    bound = (1e-5 * (x64[..., shortcut:shortcut + n].abs() + F.conv1d(elu.abs(), point64.abs()))
             + F.conv1d(hidden_bound, point64.abs()))
    if pointwise_bias is not None:
        bound = bound + 1e-5 * pointwise_bias.double().abs()[:, None]
    return out.transpose(1, 2), bound.transpose(1, 2)


def test_residual_unit_kernel_matches_float64_math_and_the_codec_takes_it(monkeypatch):
    """residual_unit.c on this build's branch (the codec's residual units) against float64 maths
    (F.conv1d) on random weights: dilation, 4 taps, 1 and 203 rows (not whole tiles), a batch, the
    inputs in one piece or two; and the codec's residual unit runs it, mono and stereo, pushed whole
    or in odd pieces, equal to the unit's one-shot maths within the bound."""
    from daemon.models.musicgen.encodec_stages import ConvSpec, EluSpec, ResidualSpec, ResidualUnit
    from daemon.native import residual_unit

    panel = residual_unit.panel_columns()
    if not panel:
        pytest.skip("riffd's kernels do not run here")
    generator = torch.Generator().manual_seed(11)
    for channels, hidden, kernel, dilation, n, alpha, batch, split in ((2 * panel, panel, 3, 1, 203, 1.0, 1, 2),
                                                                       (panel, 2 * panel, 4, 3, 1, 0.5, 2, 0),
                                                                       (512, 256, 3, 1, 37, 1.0, 1, 30)):
        conv = torch.randn(hidden, channels, kernel, generator=generator) / (kernel * channels) ** 0.5
        pointwise = torch.randn(channels, hidden, 1, generator=generator) / hidden ** 0.5
        conv_bias, pointwise_bias = ((torch.randn(hidden, generator=generator), torch.randn(channels, generator=generator))
                                     if alpha == 1.0 else (None, None))
        assert residual_unit.fits(conv, pointwise, dilation)
        x = torch.randn(batch, n + (kernel - 1) * dilation, channels, generator=generator)
        shortcut = (kernel - 1) * dilation // 2
        pieces = (x[:, :split].contiguous(), x[:, split:].contiguous()) if split else (x,)
        got = residual_unit.unit(pieces, residual_unit.pack(conv), conv_bias, dilation, shortcut, alpha,
                                 residual_unit.pack(pointwise), pointwise_bias, alpha)
        want, bound = _unit_reference(x, conv, conv_bias, dilation, shortcut, alpha, pointwise, pointwise_bias, alpha)
        assert got.shape == want.shape and ((got.double() - want).abs() <= bound).all()
    assert not residual_unit.fits(torch.randn(panel + 1, 2 * panel, 3), torch.randn(2 * panel, panel + 1, 1), 1)
    with pytest.raises(ValueError, match="residual_unit"):
        residual_unit.unit((x[:, :(kernel - 1) * dilation].contiguous(),), residual_unit.pack(conv), conv_bias, dilation,
                           0, alpha, residual_unit.pack(pointwise), pointwise_bias, alpha)

    channels, hidden = 2 * panel, panel
    conv = torch.randn(hidden, channels, 3, generator=generator) / (3 * channels) ** 0.5
    pointwise = torch.randn(channels, hidden, 1, generator=generator) / hidden ** 0.5
    spec = ResidualSpec(main=(EluSpec(1.0), ConvSpec(conv, torch.randn(hidden, generator=generator), 1, 1, 1, "reflect"),
                              EluSpec(1.0), ConvSpec(pointwise, torch.randn(channels, generator=generator), 1, 0, 0,
                                                     "reflect")), shortcut=())
    ran = []
    real = residual_unit.unit
    monkeypatch.setattr(residual_unit, "unit", lambda *args: ran.append(len(args[0])) or real(*args))
    for batch in (1, 2):
        x = torch.randn(batch, 301, channels, generator=generator)
        padded = F.pad(x.transpose(1, 2), (1, 1), "reflect").transpose(1, 2)
        want, bound = _unit_reference(padded, conv, spec.main[1].bias, 1, 1, 1.0, pointwise, spec.main[3].bias, 1.0)
        whole, pieces = ResidualUnit(spec, x, batch, channels), ResidualUnit(spec, x, batch, channels)
        one = torch.cat([whole.push(x), whole.flush()], dim=1)
        parts = [pieces.push(x[:, i:i + size]) for i, size in ((0, 1), (1, 2), (3, 7), (10, 13), (23, 250), (273, 28))]
        streamed = torch.cat([*parts, pieces.flush()], dim=1)
        for got in (one, streamed):
            assert got.shape == want.shape and ((got.double() - want).abs() <= bound).all()
    assert 1 in ran and 2 in ran  # whole pieces (start, flush) and the steady state's kept and new rows


def test_native_elu_matches_float64_math_and_the_codec_takes_it(monkeypatch):
    """elu.c on this build's branch (the streaming codec's ELUs) against float64 maths: within 2e-7 of
    alpha, x itself where x >= 0, a tail shorter than a vector; and the codec's ELU stage runs it."""
    from daemon.models.musicgen.encodec_stages import Elu, EluSpec
    from daemon.native import elu

    x = torch.cat([torch.linspace(-90, 20, 40_000), torch.randn(40_000) * 3, torch.tensor([0.0, -0.0, -1e-9, 3.0, -2.0])])
    for alpha in (1.0, 0.5):
        got = elu.elu(x, alpha)
        assert (got.double() - torch.nn.functional.elu(x.double(), alpha)).abs().max() <= 2e-7 * alpha
        assert torch.equal(got[x >= 0], x[x >= 0])
        in_place = x.clone()
        assert elu.elu(in_place, alpha, out=in_place) is in_place and torch.equal(in_place, got)
    ran = []
    monkeypatch.setattr(elu, "elu", lambda x, alpha: ran.append(x.numel()) or x)
    Elu(EluSpec(1.0), x, 1, 1).push(x[None, None])
    assert ran == [x.numel()]


def test_native_elu_pairs_are_elu_bits_and_the_codec_takes_them(monkeypatch):
    """elu.c's pairs (a transposed convolution's inputs, the ELU before it taken on the way): row t
    is elu(x[t - 1]) then elu(x[t]), the bits `elu` gives, across the pool's row ranges; and a codec
    chain of an ELU and a transposed convolution makes its pairs so, with the samples it had made."""
    from daemon.models.musicgen.encodec_stages import Chain, ConvTransposeSpec, EluSpec
    from daemon.native import elu

    if not elu.available():
        pytest.skip("riffd's kernels do not run here")
    generator = torch.Generator().manual_seed(8)
    for batch, n, cols in ((1, 1, 16), (2, 25, 1024), (1, 4000, 128), (2, 3, 48)):
        x, last = torch.randn(batch, n, cols, generator=generator) * 3, torch.randn(batch, 1, cols, generator=generator)
        made = elu.elu(x, 1.0)
        want = torch.cat([torch.cat([last, made[:, :-1]], dim=1), made], dim=2)
        assert torch.equal(elu.elu_pairs(x, last, 1.0), want)
    spec = ConvTransposeSpec.from_weight(torch.randn(32, 16, 8, generator=generator), torch.randn(16, generator=generator),
                                         4, 2, 2)
    x = torch.randn(1, 32, 40, generator=generator)  # channel-major, as a chain takes it
    fused, alone = Chain((EluSpec(1.0), spec), x, 1, 32), Chain((spec,), x, 1, 32)
    assert fused.stages[0].passes_on and fused.stages[1].elu_alpha == 1.0 and alone.stages[0].elu_alpha is None
    ran = []
    real = elu.elu_pairs
    monkeypatch.setattr(elu, "elu_pairs", lambda *args: ran.append(1) or real(*args))
    # The same transposed convolution fed riffd's ELU of the same inputs, the ELU as a pass of its own.
    made = elu.elu(x.transpose(1, 2).contiguous(), 1.0).transpose(1, 2)
    pieces = ((0, 3), (3, 1), (4, 36))
    got = [fused.push(x[..., i:i + size]) for i, size in pieces] + [fused.flush()]
    want = [alone.push(made[..., i:i + size]) for i, size in pieces] + [alone.flush()]
    assert ran and all(torch.equal(a, b) for a, b in zip(got, want))


def test_native_gelu_matches_torch():
    from daemon.native.decoder_step import functions

    x = torch.cat([torch.linspace(-12, 12, 4096), torch.randn(4096) * 3, torch.tensor([0.0, -0.0] * 8)])
    got = x.clone()
    functions().riffd_gelu(got.data_ptr(), got.numel())
    want = torch.nn.functional.gelu(x.double())
    # erf to 1.5e-7 absolute: GELU within 1e-7 of |x| (and exact zeros stay zero)
    assert bool(((got.double() - want).abs() <= 1e-7 * x.double().abs() + 1e-7).all())
    assert torch.equal(got[-16:], torch.zeros(16))


@pytest.mark.parametrize("activation_bits", [8, 16])
@pytest.mark.parametrize("rows", [1, 2, 4, 17])
def test_a_product_with_gelu_gives_the_bits_of_the_product_then_riffd_gelu(activation_bits, rows):
    """fc1's kernels apply GELU block by block as they write (decode rows; 17: a prefill's chunk,
    AVX2's widened tiles): the bits of the plain product followed by riffd_gelu, on every row."""
    from daemon.native.decoder_step import functions

    generator = torch.Generator().manual_seed(rows)
    codes = torch.randint(-127, 128, (256, 1024), dtype=torch.int8, generator=generator)
    scales = torch.rand(256, generator=generator) * 0.01 + 1e-4
    x = torch.randn((rows, 1024), generator=generator)
    packed = int8_matvec.pack(codes, scales, activation_bits=activation_bits)
    want = int8_matvec.matvec(x, packed)
    assert bool((want < 0).any())  # GELU changes these outputs: a kernel without it fails below
    functions().riffd_gelu(want.data_ptr(), want.numel())
    assert torch.equal(int8_matvec.matvec(x, packed, gelu=True), want)


def test_library_is_built_once_and_cached_by_content():
    loaded = library()
    built = list(cache_dir().glob("libriffd-*.so"))
    assert loaded is library()
    assert any(path.name in loaded._name for path in built)


def assert_native_step_equals_python(bundle, options: EngineOptions, texts: list[str], frames: int) -> MusicgenEngine:
    """The native step against the Python step of the same weight format: the same greedy codes and
    logits within float rounding; returns the native engine. Its conditions stay unfolded: folding is
    the native step's own approximation (tests/musicgen/test_folded_condition.py)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(folded_condition, "FOLD_CONDITION", False)
        return _native_step_equals_python(bundle, options, texts, frames)


def _native_step_equals_python(bundle, options: EngineOptions, texts: list[str], frames: int) -> MusicgenEngine:
    native = MusicgenEngine(bundle, options)
    assert native.decoder.native is not None
    python = MusicgenEngine(bundle, options)
    python.decoder.native = None
    cond = build_conditioning(bundle, texts, guidance_scale=3.0)
    agreement = compare(python, native, cond, frames=frames)
    print(agreement)
    assert agreement.token_agreement == 1.0
    assert 0 < agreement.relative_logit_error < 1e-4
    params = GenerationParams(duration_s=frames / bundle.frame_rate, greedy=True)
    first = torch.stack(list(native.columns(cond, None, frames, params, None)), dim=-1)
    second = torch.stack(list(python.columns(cond, None, frames, params, None)), dim=-1)
    assert torch.equal(first, second)
    return native


@pytest.mark.parametrize("preset, texts, mode", [
    ("debug/musicgen", ["an upbeat jazz tune with a walking bass", "drums"], "int8"),  # 4 rows, masked cross-attention
    ("debug/musicgen-stereo", ["strings"], "int8"),
    ("debug/musicgen-melody", ["folk guitar"], "int8"),  # no cross-attention: the condition is a prefix
    ("debug/musicgen", ["an upbeat jazz tune with a walking bass", "drums"], "int8a8"),  # 8-bit activations
])
def test_native_step_equals_the_python_int8_step(load_preset, preset, texts, mode):
    options = EngineOptions(weights=mode, warmup=False)
    native = assert_native_step_equals_python(load_preset(preset).bundle, options, texts, frames=40)
    assert native.live_caches == 0
    # every layer's projections run the mode's kernel in the native step (int8 lm heads in both)
    layer = native.decoder.native.model._layers[0]
    assert layer.qkv.act8 == layer.fc2.act8 == (mode == "int8a8") and native.decoder.native.model._model.lm_heads.act8 == 0


def test_guidances_null_rows_skip_cross_attention_with_the_same_bits(load_preset):
    """A guided window's null rows (all-zero cross keys and values) are bound without them, and the C
    step writes their cross-attention's +0 instead of computing it: the logits are the bits of the
    step that reads them."""
    bundle = load_preset("debug/musicgen").bundle
    decoder = MusicgenEngine(bundle, INT8).decoder
    assert decoder.native is not None
    cond = build_conditioning(bundle, ["an upbeat jazz tune with a walking bass", "drums"], guidance_scale=3.0)
    columns = torch.randint(0, decoder.vocab, (4, 2, bundle.num_codebooks), generator=torch.Generator().manual_seed(0))
    logits = []
    for skip in (True, False):
        with decoder.open_cache(4, 8) as cache:
            decoder.set_condition(cache, cond)
            rows = [bind_row(cache.keys, cache.values, cache.key_scales, cache.value_scales, cache.cross_keys,
                             cache.cross_values, cache.cross_mask, row, skip_zero_cross=skip) for row in range(4)]
            # conditional rows keep their keys; the null ones (the second half) are bound without them only when skipping
            assert [rows[r].caches[0].cross_keys is None for r in range(4)] == [False, False, skip, skip]
            cache.bindings["native"] = (cache.condition_version, rows)
            logits.append(torch.stack([decoder.step(cache, columns[step], step) for step in range(4)]))
    assert torch.equal(logits[0], logits[1])


def test_native_int8_agrees_with_float32(load_preset):
    bundle = load_preset("debug/musicgen").bundle
    agreement = compare(MusicgenEngine(bundle, EngineOptions(warmup=False)), MusicgenEngine(bundle, INT8),
                        build_conditioning(bundle, ["an upbeat jazz tune", "drums"], guidance_scale=3.0), frames=60)
    print(agreement)
    assert agreement.token_agreement >= 0.95
    assert agreement.relative_logit_error <= 0.02


def test_without_a_compiler_or_a_writable_cache_int8_runs_on_pytorchs_kernel(tmp_path):
    script = textwrap.dedent("""
        import logging, torch
        logging.basicConfig(level=logging.WARNING)
        from daemon.models.musicgen.speed import Int8Linear
        weight = torch.randn(64, 128)
        linear = Int8Linear([weight])
        assert linear.packed is None
        x = torch.randn(2, 128)
        error = (linear(x) - x @ weight.T).abs().max() / (x @ weight.T).abs().max()
        assert error < 0.03, error
        print("fell back")
    """)
    env = {**os.environ, "CC": "riffd-no-such-compiler", "RIFFD_NATIVE_DIR": str(tmp_path / "native")}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "fell back" in done.stdout
    assert "riffd-no-such-compiler" in done.stderr and "PyTorch's int8 kernel" in done.stderr
    assert not (tmp_path / "native").exists() or not list((tmp_path / "native").glob("*.so"))
    # A cache folder that cannot be written: the same fallback, with the reason.
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    env = {**os.environ, "RIFFD_NATIVE_DIR": str(blocker / "native")}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "cannot write riffd's native kernels" in done.stderr


def test_native_step_checks_what_the_c_side_trusts(load_preset):
    bundle = load_preset("debug/musicgen").bundle
    engine = MusicgenEngine(bundle, INT8).decoder
    cond = build_conditioning(bundle, ["drums"], guidance_scale=3.0)
    hidden = engine.weights.hidden
    with torch.inference_mode(), engine.open_cache(2, 8) as cache:
        engine.prefill(cache, cond, torch.full((1, bundle.num_codebooks, 1), bundle.pad_token_id))
        assert cache.keys[0].dtype == torch.int8 and cache.quantized
        with pytest.raises(ValueError, match="position"):
            engine.native(torch.zeros(2, 1, hidden), cache, 8)
        with pytest.raises(ValueError, match="does not match"):
            engine.native(torch.zeros(3, 1, hidden), cache, 1)
        assert engine.native(torch.zeros(2, 1, hidden), cache, 1).shape == (2, engine.weights.lm_heads.packed.rows)
    with pytest.raises(ValueError, match="does not match"), torch.inference_mode():
        engine.native(torch.zeros(2, 1, hidden), cache, 1)  # a freed cache


def test_int8_cache_slots_round_trip_within_half_a_step():
    from daemon.models.musicgen.kv_cache import KVCache

    cache = KVCache.allocate(layers=1, batch=2, heads=3, head_dim=16, max_positions=8, dtype=torch.int8,
                             device=torch.device("cpu"))
    keys = torch.randn(2, 3, 4, 16) * torch.logspace(-3, 2, 4)[None, None, :, None]
    keys[0, 0, 0] = 0.0  # an all-zero vector keeps scale 0 and codes 0
    values = -keys
    cache.write(0, torch.tensor([1, 2, 3, 5]), keys, values)
    read_keys, read_values = cache.read(0, 6, torch.float32)
    step = keys.abs().amax(dim=-1, keepdim=True) / 127
    assert bool(((read_keys[:, :, [1, 2, 3, 5]] - keys).abs() <= step / 2 + 1e-7).all())
    assert torch.equal(read_values[:, :, [1, 2, 3, 5]], -read_keys[:, :, [1, 2, 3, 5]])
    assert torch.count_nonzero(read_keys[:, :, [0, 4]]) == 0 and torch.count_nonzero(read_keys[0, 0, 1]) == 0
    assert cache.nbytes == 2 * (2 * 3 * 8 * 16) + 2 * (2 * 3 * 8 * 4)
    cache.free()
    assert cache.nbytes == 0 and not cache.quantized


def test_the_library_says_which_instruction_set_it_was_built_for():
    assert isa() in ("avx512vnni", "avxvnni", "avxvnni(avx512vl)", "avxvnni(emulated)", "avx2")
    assert library().riffd_simd_bits() == (512 if isa() == "avx512vnni" else 256)
    expected = os.environ.get("RIFFD_EXPECT_ISA")
    if expected:
        assert isa() == expected


def test_a_256_bit_build_keeps_to_the_16_vector_registers_its_cpu_has():
    # An AVX-VNNI or AVX2 CPU has vector registers 0-15 only. The AVX-VNNI branch built here through
    # AVX-512 VL's encoding could use 16-31 too, and would then spill less than the CPU it stands in
    # for (branches.UPPER_VECTOR_REGISTERS_OFF); the AVX-512 build does use them.
    objdump = shutil.which("objdump")
    assert objdump, "objdump (binutils, beside the C compiler) reads the built library"
    listing = subprocess.run([objdump, "-d", "--no-show-raw-insn", library()._name], capture_output=True,
                             text=True, timeout=120, check=True).stdout
    upper = re.findall(r"%[xyz]mm(?:1[6-9]|2[0-9]|3[01])\b", listing)
    if library().riffd_simd_bits() == 512:
        assert upper
    else:
        assert not upper, f"{len(upper)} uses of vector registers 16-31 in the {isa()} build, e.g. {upper[:5]}"


def test_a_process_logs_the_branch_it_loads():
    # A daemon child's log says which branch its environment built (bench.realtime reports it beside
    # an emulated class's figures); in a branch run (RIFFD_NATIVE_CFLAGS set), that branch's.
    script = ("import logging, sys; logging.basicConfig(level=logging.INFO, stream=sys.stdout); "
              "from daemon.native import library; library()")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"riffd's native kernels: {isa()} branch (libriffd-" in done.stdout, done.stdout


#: What each other branch reruns: the kernels, the native step (same greedy codes as the Python
#: step), the batched step, the int8 draft's speculative decoding, int4's kernel, the 4-bit cache.
BRANCH_TEST_FILES = ("test_native.py", "test_native_attention.py", "test_native_batch.py", "test_speculative.py",
                     "test_int4.py", "test_kv4.py", "test_prefill_attention.py", "test_folded_condition.py")


def _other_branches() -> list[Branch]:
    if os.environ.get("RIFFD_EXPECT_ISA") or _kernel_runs_here() is not None:
        return []  # already a run of another branch, or no kernels at all here
    return [branch for branch in runnable_here() if branch.isa != isa()]


@pytest.fixture(scope="module")
def branch_runs(tmp_path_factory: pytest.TempPathFactory, riffd_cache) -> Iterator[dict[str, tuple[subprocess.Popen, Path]]]:
    """Every other branch's run, all started when the first is asked for: each is a pytest of mostly
    one-threaded work (the suite's OMP_NUM_THREADS=1), so on a 2-core machine two overlap for about
    the time of one. Each writes its output to a file of its own (no pipe fills while another is read)."""
    here = os.path.dirname(__file__)
    # The build-cache and no-compiler tests do not depend on the branch; the daemon test is slow.
    skip = "not daemon and not without_a_compiler and not cached_by_content and not every_x86_branch"
    runs: dict[str, tuple[subprocess.Popen, Path]] = {}
    for branch in _other_branches():
        folder = tmp_path_factory.mktemp(f"branch-{branch.isa}")
        env = {**os.environ, "RIFFD_NATIVE_CFLAGS": branch.cflags, "RIFFD_NATIVE_DIR": str(folder / "native"),
               "RIFFD_EXPECT_ISA": branch.isa, "RIFFD_TEST_CACHE": str(riffd_cache)}
        output = folder / "pytest.log"
        with output.open("w") as sink:
            runs[branch.isa] = (subprocess.Popen(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", skip,
                 *(os.path.join(here, name) for name in BRANCH_TEST_FILES if os.path.exists(os.path.join(here, name)))],
                env=env, stdout=sink, stderr=subprocess.STDOUT, text=True), output)
    yield runs
    for process, _ in runs.values():
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.parametrize("branch", _other_branches(), ids=lambda branch: branch.isa)
def test_every_x86_branch_this_cpu_runs_passes_the_same_tests(branch_runs, branch):
    """Each other simd.h branch, built here with RIFFD_NATIVE_CFLAGS, runs this file's kernel and step
    tests and the speculative tests (the int8 draft's native step: same greedy codes as float32)."""
    process, output = branch_runs[branch.isa]
    returncode = process.wait(timeout=900)
    printed = output.read_text()
    assert returncode == 0, printed[-5000:]
    assert " passed" in printed and " failed" not in printed and " skipped" not in printed
