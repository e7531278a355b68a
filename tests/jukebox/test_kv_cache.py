"""The cached sampling step computes the same logits as a full forward pass.

Checked on the reference fixture's priors (block, transpose-block, previous-block and prime
attention) and on random models for the kinds the fixture does not use (dense attention,
the 5b layout with a lyric encoder and cross-attention, an untied output head).
"""

import copy

import pytest
import torch

from daemon.models.jukebox import JukeboxModel
from daemon.models.jukebox.config import JukeboxConfig
from daemon.models.jukebox.presets import DEBUG_CONFIG, init_random


def cached_logits(prior, music_tokens, upper, metadata, prefill_len):
    """Prefill `prefill_len` positions of the sequence, then step through the rest feeding the
    known tokens; returns the step logits [B, T - prefill_len, V]."""
    cond = prior.conditioning(upper, metadata)
    sequence = prior.sequence(music_tokens, cond)
    cache = prior.new_cache(sequence.shape[0])
    if prefill_len:
        prior.prefill(sequence[:, :prefill_len], cond, cache)
    out = []
    for t in range(prefill_len, sequence.shape[1]):
        previous = sequence[:, t - 1 : t] if t else None
        out.append(prior.step_logits(previous, cond, cache))
    assert cache.position == sequence.shape[1]
    return torch.cat(out, dim=1)


def window_inputs(model, level, batch=1, seed=0):
    prior = model.priors[level]
    g = torch.Generator().manual_seed(seed)
    vocab = prior.music_vocab_size
    tokens = torch.randint(0, vocab, (batch, prior.n_ctx), generator=g)
    labels = torch.tensor([[0, 0, 0, 5, 4] + torch.randint(1, 79, (40,), generator=g).tolist()]).repeat(batch, 1)
    head = 4 + prior.config.max_nb_genres
    labels = labels[:, : head + (40 if prior.lyric_len else 0)]
    metadata = prior.window_metadata(labels, 0, 16384, 0)
    upper = None
    if level:
        upper = torch.randint(0, vocab, (batch, prior.n_ctx // prior.cond_downsample), generator=g)
    return prior, tokens, upper, metadata


@pytest.mark.parametrize("level", [0, 1, 2])
@pytest.mark.parametrize("prefill_len", [0, 21])
def test_fixture_priors_cached_equals_full(model, level, prefill_len):
    prior, tokens, upper, metadata = window_inputs(model, level)
    full = prior.teacher_forced_logits(tokens, upper, metadata)
    stepped = cached_logits(prior, tokens, upper, metadata, prefill_len)
    torch.testing.assert_close(stepped, full[:, prefill_len:], atol=1e-5, rtol=1e-5)


def random_model(top_prior_changes: dict, seed: int = 0) -> JukeboxModel:
    """A random model in float64, so that any difference above rounding is a real one."""
    raw = copy.deepcopy(DEBUG_CONFIG)
    raw["prior_config_list"][0].update(top_prior_changes)
    torch.manual_seed(seed)
    model = JukeboxModel(JukeboxConfig.from_dict(raw)).eval()
    init_random(model)
    with torch.no_grad():  # make the conditioning and attention matter more than at init scale
        for p in model.priors[0].parameters():
            p.mul_(20.0)
    return model.double()


FIVE_B_LIKE = dict(
    attention_pattern="large_separated_enc_dec_w_lyrics",
    num_layers=20,  # layer 18 is a cross-attention layer
    is_encoder_decoder=False,
    merged_decoder=True,  # untied head, conditioning not added after the stack
    nb_relevant_lyric_tokens=8,
    encoder_config=dict(
        hidden_size=16, num_layers=3, n_heads=1, n_ctx=8, blocks=4, mask=True,
        attention_pattern="raw_column_previous_row_attention", nb_relevant_lyric_tokens=8,
        lyric_vocab_size=79, is_encoder_decoder=False, merged_decoder=False,
    ),
)


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
