"""A short condition folded into the cross-attention's projections (folded_condition.py, fold.c,
decoder_step.c's cross_folded): the folded vectors against float64 maths on the projections' codes,
the step with them against the step without, and which rows fold."""

from __future__ import annotations

import math

import pytest
import torch

from daemon.models.musicgen import folded_condition
from daemon.models.musicgen.agreement import compare
from daemon.models.musicgen.conditioning import build_conditioning
from daemon.models.musicgen.engine import MusicgenEngine
from daemon.models.musicgen.folded_condition import ConditionFolder, folded_slots, folds
from daemon.models.musicgen.options import EngineOptions
from daemon.native import int8_matvec
from tests.musicgen.test_native import _kernel_runs_here

pytestmark = pytest.mark.skipif(_kernel_runs_here() is not None, reason=f"native int8 kernel: {_kernel_runs_here()}")

INT8 = EngineOptions(weights="int8", warmup=False)


def random_projection(hidden: int, generator: torch.Generator) -> int8_matvec.PackedInt8:
    codes = torch.randint(-127, 128, (hidden, hidden), dtype=torch.int8, generator=generator)
    return int8_matvec.pack(codes, torch.rand(hidden, generator=generator) * 0.01 + 1e-3)


@pytest.mark.parametrize("cross_len", [1, 5, 16])
def test_the_fold_is_float64_maths_on_the_projections_codes_within_its_rounding(cross_len):
    layers, heads, head_dim = 2, 4, 64
    hidden = heads * head_dim
    generator = torch.Generator().manual_seed(cross_len)
    cross_q = [random_projection(hidden, generator) for _ in range(layers)]
    cross_out = [random_projection(hidden, generator) for _ in range(layers)]
    keys = [torch.randn(heads, cross_len, head_dim, generator=generator) for _ in range(layers)]
    values = [torch.randn(heads, cross_len, head_dim, generator=generator) for _ in range(layers)]
    folder = ConditionFolder(cross_q, cross_out, heads)
    slots = folder.slots(cross_len)
    assert slots is not None and slots >= cross_len
    folded = folder.fold(keys, values, slots)
    for layer in range(layers):
        w_q = cross_q[layer].dequantized().double().view(heads, head_dim, hidden)
        w_o = cross_out[layer].dequantized().double().view(hidden, heads, head_dim)
        want_scores = torch.einsum("htj,hjk->htk", keys[layer].double(), w_q) / math.sqrt(head_dim)
        want_mix = torch.einsum("dhj,htj->dht", w_o, values[layer].double())
        scores, mix = folded.scores[layer], folded.mix[layer]
        got_scores = scores.dequantized().double().view(heads, slots, hidden)
        got_mix = mix.dequantized().double().view(hidden, heads, slots)
        assert torch.equal(got_scores[:, cross_len:], torch.zeros_like(got_scores[:, cross_len:]))  # padding
        assert torch.equal(got_mix[..., cross_len:], torch.zeros_like(got_mix[..., cross_len:]))
        # each vector rounded to int8 with its own scale: within half a step (and the products' 16-bit
        # activations' rounding, far below it)
        step_scores = scores.scales.double().view(heads, slots)[:, :cross_len, None]
        assert bool(((got_scores[:, :cross_len] - want_scores).abs() <= 0.51 * step_scores).all())
        step_mix = mix.scales.double()[:, None, None]
        assert bool(((got_mix[..., :cross_len] - want_mix).abs() <= 0.51 * step_mix).all())
        assert int(scores.row_sums.sum()) == int(scores.codes().to(torch.int64).sum())


def test_only_short_conditions_fold_by_their_length_not_the_kernels_padding():
    assert folds(16, 1024, 8) and folds(16, 1024, folded_condition.MAX_TOKENS)
    assert not folds(16, 1024, folded_condition.MAX_TOKENS + 1)
    assert not folds(16, 1024, 0)
    assert not folds(2, 32, 13) and folds(2, 32, 12)  # the share: 2 x 2 x 12 <= 0.75 x 2 x 32
    # padding fills the kernel's blocks and column groups, never shrinks a condition
    assert folded_slots(16, 12, 32, 16) == 12 and folded_slots(16, 13, 32, 16) == 14
    assert folded_slots(2, 5, 32, 16) == 16 and folded_slots(2, 5, 8, 16) == 8


def bound_folds(engine: MusicgenEngine, cache) -> list[bool]:
    return [bool(row.caches[0].folded_scores.packed) for row in engine.decoder.native.rows(cache)]


def test_a_folded_condition_follows_the_projections_and_only_its_conditional_rows_fold(load_preset):
    bundle = load_preset("debug/musicgen").bundle
    reference, folded = MusicgenEngine(bundle, INT8), MusicgenEngine(bundle, INT8)
    cond = build_conditioning(bundle, ["strings", "drums"], guidance_scale=3.0)
    with folded.decoder.open_cache(4, 8) as cache:
        folded.decoder.set_condition(cache, cond)
        assert bound_folds(folded, cache) == [True, True, False, False]  # guidance's null rows attend to nothing
    long = build_conditioning(bundle, ["an upbeat jazz tune with a walking bass"], guidance_scale=3.0)
    with folded.decoder.open_cache(2, 8) as cache:
        folded.decoder.set_condition(cache, long)
        assert bound_folds(folded, cache) == [False, False]

    reference.decoder.native.folder = None  # the projections, as with FOLD_CONDITION off
    with reference.decoder.open_cache(4, 8) as cache:
        reference.decoder.set_condition(cache, cond)
        assert bound_folds(reference, cache) == [False] * 4
    agreement = compare(reference, folded, cond, frames=40)
    print(agreement)
    assert agreement.relative_logit_error > 0  # the folded path ran: not the projections' bits
    assert agreement.relative_logit_error < 0.002  # measured 1.9e-4 (AVX-512 VNNI)
    assert agreement.token_agreement >= 0.95


def test_a_condition_projected_again_reuses_its_fold(load_preset):
    """A long-form job's next window projects the same prompt into new tensors: one fold serves both."""
    bundle = load_preset("debug/musicgen").bundle
    engine = MusicgenEngine(bundle, INT8)
    cond = build_conditioning(bundle, ["strings"], guidance_scale=3.0)
    other = build_conditioning(bundle, ["drums"], guidance_scale=3.0)
    addresses = []
    for condition in (cond, cond, other):
        with engine.decoder.open_cache(2, 8) as cache:
            engine.decoder.set_condition(cache, condition)
            addresses.append(engine.decoder.native.rows(cache)[0].caches[0].folded_scores.packed)
    assert addresses[0] and addresses[0] == addresses[1] != addresses[2]
