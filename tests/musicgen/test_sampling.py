"""Seeded sampling is reproducible; seeds, temperature and the cut-offs change what is drawn."""

from __future__ import annotations

import numpy as np
import torch

from daemon.models.musicgen.sampling import sample_next
from protocol.params import GenerationParams


def test_same_seed_same_audio_other_seed_other_audio(musicgen):
    params = GenerationParams(duration_s=0.5, seed=1234)
    first = musicgen.generate(["synthwave"], params)
    again = musicgen.generate(["synthwave"], params)
    other = musicgen.generate(["synthwave"], GenerationParams(duration_s=0.5, seed=1235))
    assert torch.equal(first.codes, again.codes)
    np.testing.assert_array_equal(first.audio, again.audio)
    assert not torch.equal(first.codes, other.codes)
    assert first.seed == 1234


def test_top_k_one_is_greedy(musicgen):
    greedy = musicgen.generate(["techno"], GenerationParams(duration_s=0.5, greedy=True))
    top1 = musicgen.generate(["techno"], GenerationParams(duration_s=0.5, top_k=1, seed=7))
    assert torch.equal(greedy.codes, top1.codes)


def test_seed_is_drawn_and_reported_when_absent(musicgen):
    a = musicgen.generate(["techno"], GenerationParams(duration_s=0.2))
    b = musicgen.generate(["techno"], GenerationParams(duration_s=0.2))
    assert a.seed != b.seed
    replay = musicgen.generate(["techno"], GenerationParams(duration_s=0.2, seed=a.seed))
    assert torch.equal(a.codes, replay.codes)


def test_cutoffs_restrict_the_draw():
    generator = torch.Generator().manual_seed(0)
    scores = torch.tensor([[4.0, 3.0, 2.0, 1.0, 0.0]]).repeat(2000, 1)
    top2 = sample_next(scores, GenerationParams(top_k=2), generator)
    assert set(top2.tolist()) == {0, 1}
    # p(0) = 0.64, p(0) + p(1) = 0.88: top_p 0.8 keeps exactly the two best codes.
    nucleus = sample_next(scores, GenerationParams(top_k=0, top_p=0.8), generator)
    assert set(nucleus.tolist()) == {0, 1}
    everything = sample_next(scores, GenerationParams(top_k=0, top_p=0.0), generator)
    assert set(everything.tolist()) == {0, 1, 2, 3, 4}
    cold = sample_next(scores, GenerationParams(top_k=0, temperature=0.05), generator)
    assert (cold == 0).float().mean() > 0.99


def test_the_draw_is_torch_multinomials_to_the_bit_and_leaves_the_generator_where_it_leaves_it():
    """`draw` races the probabilities with exponentials (so a batch draws each stream's from its own
    generator, then races all rows at once): the very codes of `torch.multinomial(probs, 1)`, which
    seeded jobs gave before and transformers' sampling gives."""
    from daemon.models.musicgen.sampling import draw

    for seed in range(12):
        probs = torch.softmax(3 * torch.randn(8, 2048, generator=torch.Generator().manual_seed(seed)), dim=-1)
        probs[:, seed::7] = 0  # top-k and top-p cut codes out: exact zeros
        expected, drawn = torch.Generator().manual_seed(100 + seed), torch.Generator().manual_seed(100 + seed)
        assert torch.equal(draw(probs, drawn), torch.multinomial(probs, 1, generator=expected)[:, 0])
        assert torch.equal(drawn.get_state(), expected.get_state())
