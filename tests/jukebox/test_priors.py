"""Teacher-forced logits of every prior against the reference's forward_tokens(..., get_preds=True)."""

import pytest
import torch

SAMPLE_LENGTH = 16384  # samples: the length the reference's metadata used


def reference_inputs(model, expected, labels, level):
    prior = model.priors[level]
    metadata = prior.window_metadata(labels[level], start=0, total_length=SAMPLE_LENGTH, offset=0)
    upper = None
    if level > 0:
        upper = prior.upper_window(expected[f"prior{level}_upper_{level - 1}"], 0, prior.n_ctx)
    return prior, expected[f"prior{level}_in_tokens"], upper, metadata


@pytest.mark.parametrize("level", [0, 1, 2])
def test_teacher_forced_logits_match_reference(model, expected, labels, level):
    prior, tokens, upper, metadata = reference_inputs(model, expected, labels, level)
    logits = prior.teacher_forced_logits(tokens, upper, metadata)
    reference = expected[f"prior{level}_logits"]
    assert logits.shape == reference.shape
    torch.testing.assert_close(logits, reference, atol=1e-5, rtol=0)


def test_top_prior_reads_the_lyric_window_around_its_midpoint(model, labels):
    prior = model.priors[0]
    metadata = prior.window_metadata(labels[0], start=0, total_length=SAMPLE_LENGTH, offset=0)
    lyrics = labels[0][0, 5:]  # 38 lyric ids after 3 timing slots, artist and 1 genre
    # the window covers the whole piece: midpoint 19 of 38, so ids 11..26
    assert metadata[0, :5].tolist() == [SAMPLE_LENGTH, 0, SAMPLE_LENGTH, 3, 7]
    assert torch.equal(metadata[0, 5:], lyrics[11:27])


def test_upsampler_metadata_has_window_offset(model, labels):
    prior = model.priors[2]
    metadata = prior.window_metadata(labels[2], start=96, total_length=SAMPLE_LENGTH, offset=0)
    assert metadata[0].tolist() == [SAMPLE_LENGTH, 96 * 8, 64 * 8, 5, 4]
    # offset is in samples (transformers 4.40.2 multiplied it by the hop, against its own docs)
    metadata = prior.window_metadata(labels[2], start=96, total_length=SAMPLE_LENGTH, offset=4410)
    assert metadata[0, 1].item() == 4410 + 96 * 8


def test_timing_outside_trained_range_is_an_error(model, labels):
    prior = model.priors[0]
    metadata = prior.window_metadata(labels[0], start=0, total_length=600 * 44100, offset=0)
    with pytest.raises(ValueError, match="timing outside"):
        prior.teacher_forced_logits(torch.zeros(1, 128, dtype=torch.long), None, metadata)
