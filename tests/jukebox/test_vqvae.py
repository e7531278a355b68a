import pytest
import torch


def test_codes_match_reference(model, expected):
    codes = model.vqvae.encode(expected["audio"], 0, 3)
    assert len(codes) == 3
    for level in range(3):
        assert torch.equal(codes[level], expected[f"vq_tokens_{level}"])


def test_partial_level_range(model, expected):
    codes = model.vqvae.encode(expected["audio"], start_level=1, end_level=3)
    assert [c.shape[1] for c in codes] == [256, 64]
    assert torch.equal(codes[1], expected["vq_tokens_2"])


@pytest.mark.parametrize("level", [0, 1, 2])
def test_decode_matches_reference(model, expected, level):
    audio = model.vqvae.decode([expected[f"vq_tokens_{level}"]], start_level=level)
    assert audio.shape == (1, 8192, 1)
    torch.testing.assert_close(audio, expected[f"vq_decode_{level}"], atol=1e-5, rtol=0)


def test_bad_input_is_rejected(model):
    with pytest.raises(ValueError, match="multiple of 128"):
        model.vqvae.encode(torch.zeros(1, 1000, 1))
    with pytest.raises(ValueError, match=r"\[batch, samples, 1\]"):
        model.vqvae.encode(torch.zeros(1, 1024))
    with pytest.raises(ValueError, match="lie in"):
        model.vqvae.decode([torch.full((1, 4), 64)])
    with pytest.raises(ValueError, match="start_level"):
        model.vqvae.decode([torch.zeros(1, 4, dtype=torch.long)], start_level=3)
