"""The three sampling bugs of transformers 4.40.2 listed in the fixture's meta.json stay fixed.

Each test fails with the upstream behaviour put back.
"""

import pytest
import torch

LENGTH = 16384


def empty():
    return torch.zeros(1, 0, dtype=torch.long)


def test_meta_lists_the_three_fixes(meta):
    assert len(meta["upstream_fixes"]) == 3


def test_1_upper_level_tokens_are_sliced_to_the_window(model, expected, labels, meta):
    """Upstream get_music_tokens_conds returned the whole upper sequence, not the window's part."""
    prior = model.priors[1]  # 4 level-1 tokens per top token
    top = expected["upsample_in_top"]
    window = prior.upper_window(top, start=96, end=96 + prior.n_ctx)
    assert torch.equal(window, top[:, 24:40])
    # near the end the window is padded with zeros to n_ctx / 4
    assert torch.equal(prior.upper_window(top, start=480, end=544), torch.cat([top[:, 120:], torch.zeros(1, 8, dtype=torch.long)], 1))
    # a window's logits depend only on the upper tokens under it
    tokens = torch.randint(0, 64, (1, 64), generator=torch.Generator().manual_seed(0))
    metadata = prior.window_metadata(labels[1], 96, LENGTH, 0)
    outside_changed = top.clone()
    outside_changed[:, :24] = (outside_changed[:, :24] + 1) % 64
    outside_changed[:, 40:] = (outside_changed[:, 40:] + 1) % 64
    a = prior.teacher_forced_logits(tokens, prior.upper_window(top, 96, 160), metadata)
    b = prior.teacher_forced_logits(tokens, prior.upper_window(outside_changed, 96, 160), metadata)
    assert torch.equal(a, b)
    # and the seeded upsampling, whose windows start past 0, matches the fixed reference
    torch.manual_seed(meta["seed_sample"] + 1)
    torch.randint(0, 64, (1, LENGTH // 128))  # the reference drew the top tokens first
    tokens = model.upsample([top, empty(), empty()], labels, sample_levels=[1, 2], sample_length=LENGTH)
    assert torch.equal(tokens[1], expected["upsample_1"])
    assert torch.equal(tokens[2], expected["upsample_2"])


def test_2_upsample_defaults_to_the_levels_below_the_top(model, expected, labels, meta):
    """Upstream upsample() defaulted to sample_levels=[0, 1]: the top again, never the bottom."""
    torch.manual_seed(meta["seed_sample"] + 1)
    top = torch.randint(0, 64, (1, LENGTH // 128))  # drawn as the reference drew it
    assert torch.equal(top, expected["upsample_in_top"])
    tokens = model.upsample([top, empty(), empty()], labels, sample_length=LENGTH)
    assert torch.equal(tokens[0], top)
    assert torch.equal(tokens[1], expected["upsample_1"])
    assert torch.equal(tokens[2], expected["upsample_2"])


def test_3_primed_sample_puts_codes_in_prior_order(model, expected, labels, meta):
    """Upstream primed_sample passed the VQ-VAE's bottom-first codes to priors that read top first."""
    torch.manual_seed(meta["seed_sample"] + 2)
    prime = torch.rand(1, 4096, 1) * 2 - 1
    tokens = model.primed_sample(prime, labels, sample_length=LENGTH)
    for level in range(3):
        assert torch.equal(tokens[level], expected[f"continue_{level}"]), level
    # the bottom-first order is refused with a clear error rather than sampled
    with pytest.raises(ValueError, match="prior order"):
        model.continue_sample(model.vqvae.encode(prime), labels, sample_length=LENGTH)
