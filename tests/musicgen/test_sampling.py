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


def test_the_native_scores_are_pytorchs_bits_guided_tempered_and_cut():
    """`guided_distribution` (guidance, temperature and top-k in sampling.c's one pass) against PyTorch's
    `apply_guidance` then `distribution`, to the bit: scales and temperatures that round (1/3, 0.7, 2.9),
    ties at the k-th best, -inf logits, k at the edges, top-p after the cut, several windows side by side;
    a NaN row takes PyTorch's path."""
    from daemon.models.musicgen.sampling import apply_guidance, distribution, guided_distribution
    from daemon.native import sampling as native_sampling

    generator = torch.Generator().manual_seed(3)
    vocab = 2048
    for case in range(24):
        params = GenerationParams(top_k=[250, 1, 2047, 2048, 0, 7][case % 6], temperature=[1.0, 0.7, 1 / 3, 2.9][case % 4],
                                  top_p=0.9 if case % 5 == 4 else 0.0)
        windows = []
        for rows, scale in ((4, [3.0, 1 / 3, 7.77][case % 3]), (8, None), (2, 2.9)):
            logits = torch.randn((2 * rows if scale is not None else rows, vocab), generator=generator) * 4
            logits[:, ::5] = torch.round(logits[:, ::5])  # ties, at and around the k-th best too
            logits[0, :3] = float("-inf")
            windows.append((logits, scale))
        want = distribution(torch.cat([apply_guidance(x, s) if s is not None else x for x, s in windows]), params)
        assert torch.equal(guided_distribution(windows, params), want), case
        one, scale = windows[0]
        out = torch.empty((one.shape[0] // 2, vocab))
        assert native_sampling.scores_into(out, one, guided=True, guidance_scale=scale, temperature=params.temperature,
                                           top_k=params.top_k)  # the native pass ran, not the fallback
    nan = torch.randn((8, vocab), generator=generator)
    nan[1, 5] = float("nan")
    params = GenerationParams()
    assert not native_sampling.scores_into(torch.empty((4, vocab)), nan, guided=True, guidance_scale=3.0,
                                           temperature=1.0, top_k=250)
    torch.testing.assert_close(guided_distribution([(nan, 3.0)], params), distribution(apply_guidance(nan, 3.0), params),
                               rtol=0, atol=0, equal_nan=True)


def test_a_pattern_column_with_nothing_forced_is_column_values_without_its_calls():
    """`WindowPattern.column`'s shortcut (no codebook in the BOS ramp, the prompt or past the end) against
    `column_values` at every step of windows with and without a prompt, mono and stereo delays."""
    from daemon.models.musicgen.delay import WindowPattern, column_values

    generator = torch.Generator().manual_seed(5)
    for prompt_frames, channels in ((0, 1), (3, 1), (6, 2), (0, 2)):
        prompt = (torch.randint(0, 2048, (2, 4, prompt_frames), generator=generator) if prompt_frames else None)
        pattern = WindowPattern.plan(prompt, 2, 4, channels, 9, 2048, torch.device("cpu"))
        shortcut = 0
        for step in range(pattern.steps):
            proposed = torch.randint(0, 2048, (2, 4), generator=generator)
            want = column_values(pattern.prompt_frames + 1 + step, proposed, prompt, pattern.total_frames,
                                 pattern.codebook_delays, 2048)
            got = pattern.column(step, proposed)
            assert torch.equal(got, want) and got.data_ptr() != proposed.data_ptr()
            shortcut += int(not bool(pattern.forced(step).any()))
        assert shortcut == 9 - (3 if channels == 1 else 1)  # the steps with every codebook's frame a new one
