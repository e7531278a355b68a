"""The fixed-shape step (for torch.compile / CUDA graphs) gives the eager step's logits and tokens."""

import pytest
import torch

from daemon.models.jukebox import JukeboxModel
from .helpers import FIVE_B_LIKE, cached_logits, random_model, window_inputs


@pytest.fixture(scope="module")
def static_model(fixture_dir):
    return JukeboxModel.from_pretrained(fixture_dir, step="static")


def stepped(prior, tokens, upper, metadata, prefill_len):
    """Like cached_logits, through the step sampling uses."""
    cond = prior.conditioning(upper, metadata)
    sequence = prior.sequence(tokens, cond)
    cache = prior.new_cache(sequence.shape[0])
    if prefill_len:
        prior.prefill(sequence[:, :prefill_len], cond, cache)
    out = [prior.sampling_step(sequence[:, t - 1 : t] if t else None, cond, cache) for t in range(prefill_len, sequence.shape[1])]
    return torch.cat(out, dim=1)


@pytest.mark.parametrize("level", [0, 1, 2])
@pytest.mark.parametrize("prefill_len", [0, 21])
def test_static_equals_eager_on_fixture_priors(model, static_model, level, prefill_len):
    prior, tokens, upper, metadata = window_inputs(model, level)
    eager = cached_logits(prior, tokens, upper, metadata, prefill_len)
    static = stepped(static_model.priors[level], tokens, upper, metadata, prefill_len)
    torch.testing.assert_close(static, eager, atol=1e-5, rtol=1e-5)


def test_static_equals_eager_with_cross_attention():
    model = random_model(FIVE_B_LIKE)
    prior, tokens, upper, metadata = window_inputs(model, 0, batch=2)
    eager = cached_logits(prior, tokens, upper, metadata, 5)
    model.set_step_mode("static")
    static = stepped(prior, tokens, upper, metadata, 5)
    torch.testing.assert_close(static, eager, atol=1e-9, rtol=1e-9)


def test_static_step_reproduces_reference_tokens(static_model, expected, labels):
    tokens = static_model.ancestral_sample(labels, sample_length=16384, seed=1)
    for level in range(3):
        assert torch.equal(tokens[level], expected[f"ancestral_{level}"])


def test_unknown_step_mode(model):
    with pytest.raises(ValueError, match="step mode"):
        model.set_step_mode("turbo")


def test_warm_up_leaves_global_rng_alone(model):
    state = torch.get_rng_state()
    model.warm_up()
    assert torch.equal(torch.get_rng_state(), state)
