"""The cached sampling step computes the same logits as a full forward pass.

Checked on the reference fixture's priors (block, transpose-block, previous-block and prime
attention) and on random models for the kinds the fixture does not use (dense attention,
the 5b layout with a lyric encoder and cross-attention, an untied output head).
"""

import pytest
import torch

from .helpers import FIVE_B_LIKE, cached_logits, random_model, window_inputs


@pytest.mark.parametrize("level", [0, 1, 2])
@pytest.mark.parametrize("prefill_len", [0, 21])
def test_fixture_priors_cached_equals_full(model, level, prefill_len):
    prior, tokens, upper, metadata = window_inputs(model, level)
    full = prior.teacher_forced_logits(tokens, upper, metadata)
    stepped = cached_logits(prior, tokens, upper, metadata, prefill_len)
    torch.testing.assert_close(stepped, full[:, prefill_len:], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "changes",
    [dict(attention_pattern="full_dense_attention", num_layers=2), FIVE_B_LIKE],
    ids=["dense", "5b-like"],
)
@pytest.mark.parametrize("prefill_len", [0, 13])
def test_other_attention_kinds_cached_equals_full(changes, prefill_len):
    model = random_model(changes)
    prior, tokens, upper, metadata = window_inputs(model, 0, batch=2)
    full = prior.teacher_forced_logits(tokens, upper, metadata)
    assert full.shape == (2, prior.prior.n_ctx, prior.prior.vocab_size)
    stepped = cached_logits(prior, tokens, upper, metadata, prefill_len)
    torch.testing.assert_close(stepped, full[:, prefill_len:], atol=1e-9, rtol=1e-9)


def test_5b_layout_reads_lyrics_through_cross_attention():
    model = random_model(FIVE_B_LIKE)
    prior, tokens, upper, metadata = window_inputs(model, 0)
    assert hasattr(prior, "encoder") and prior.prior.fc_proj_out.weight is not prior.prior.embed_tokens.weight
    changed = metadata.clone()
    changed[:, -8:] = (changed[:, -8:] + 1) % 79
    before = prior.teacher_forced_logits(tokens, upper, metadata)
    after = prior.teacher_forced_logits(tokens, upper, changed)
    assert not torch.allclose(before, after)


def test_block_caches_stay_small(model):
    prior = model.priors[0]
    cache = prior.new_cache(1)
    capacities = {layer.kind: layer.capacity for layer in cache.layers}
    block_ctx = prior.prior.transformer.block_ctx
    assert capacities == {
        "block_attn": block_ctx,
        "prev_block_attn": 2 * block_ctx,
        "transpose_block_attn": prior.prior.n_ctx,
        "prime_attn": prior.config.lyric_prefix_len,
    }
