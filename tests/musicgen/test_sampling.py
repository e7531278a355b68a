"""Seeded sampling is reproducible; seeds, temperature and the cut-offs change what is drawn."""

from __future__ import annotations

import ctypes

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


def test_the_native_cut_finds_torch_topks_kth_best_across_signs_zeros_infinities_and_ties():
    """sampling.c's selection orders the scores' bits (the k-th best's key set bit by bit): rows where that
    order is easy to get wrong (negative k-th bests, -0 beside +0, +-inf, subnormals, one value throughout,
    two values only) cut as PyTorch's topk cuts them, for every k from 1 to the vocabulary's last."""
    from daemon.native import sampling as native_sampling

    generator = torch.Generator().manual_seed(11)
    vocab = 64
    tiny = torch.finfo(torch.float32).smallest_normal / 8
    rows = torch.stack([
        -torch.rand(vocab, generator=generator) - 1,  # every score negative
        torch.where(torch.rand(vocab, generator=generator) < 0.5, -0.0, 0.0),  # zeros of both signs
        torch.randn(vocab, generator=generator).round() * 0.0,  # more signed zeros, a few (+-0) * ties
        torch.full((vocab,), -2.5),  # one value throughout
        torch.where(torch.rand(vocab, generator=generator) < 0.3, 1.0, -1.0),  # two values
        torch.cat([torch.tensor([float("inf"), float("-inf"), float("inf"), float("-inf")]),
                   torch.randn(vocab - 4, generator=generator)]),
        torch.randn(vocab, generator=generator) * tiny,  # subnormals of both signs
        torch.randn(vocab, generator=generator) * 1e30,
    ])
    for top_k in range(1, vocab):
        params = GenerationParams(top_k=top_k, temperature=1.0)
        want = rows / params.temperature
        kth_best = torch.topk(want, top_k, dim=-1).values[:, -1:]
        want = want.masked_fill(want < kth_best, float("-inf"))
        out = torch.empty_like(rows)
        assert native_sampling.scores_into(out, rows, guided=False, guidance_scale=1.0, temperature=1.0, top_k=top_k)
        assert torch.equal(out, want), top_k
        assert torch.equal(torch.signbit(out), torch.signbit(want)), top_k  # the zeros kept keep their signs


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
            # Codes the caller gives away stand as the column where nothing is forced; else the
            # column is made apart and `proposed` left as it was.
            given = proposed.clone()
            owned = pattern.column(step, given, owned=True)
            forced = bool(pattern.forced(step).any())
            assert torch.equal(owned, want) and (owned is given) == (not forced)
            assert torch.equal(given, proposed)
            shortcut += int(not forced)
        assert shortcut == 9 - (3 if channels == 1 else 1)  # the steps with every codebook's frame a new one


def _torch_codes(windows, params, generators):
    """The draw as PyTorch made it before sampling.c raced it: guided scores, `distribution`, each window's
    exponentials from its own generator, `race`."""
    from daemon.models.musicgen.sampling import apply_guidance, distribution, exponentials, race

    probs = distribution(torch.cat([apply_guidance(x, s) if s is not None else x for x, s in windows]), params)
    sizes = [x.shape[0] // 2 if s is not None else x.shape[0] for x, s in windows]
    noise = torch.empty_like(probs)
    for generator, rows, out in zip(generators, probs.split(sizes), noise.split(sizes), strict=True):
        exponentials(rows, generator, out)
    return race(probs, noise)


def test_the_native_race_draws_pytorchs_codes_from_each_streams_generator():
    """`guided_codes` (sampling.c: each stream's exponentials from its torch generator's own state, the
    race in double with a rounding margin) against PyTorch's softmax, `exponential_` and race: the same
    codes and every generator left where PyTorch leaves it, for top-k (250, none, 1), top-p, temperatures,
    guidance 1.0 and none, windows sharing a generator and the default one, a window with a NaN (PyTorch's
    path for it alone); with no margin at all (every row PyTorch's race on the native draw) too."""
    from daemon.models.musicgen.sampling import guided_codes
    from daemon.native import sampling as native_sampling

    source = torch.Generator().manual_seed(11)
    vocab = 2048
    settings = [GenerationParams(), GenerationParams(top_k=0, top_p=0.9), GenerationParams(top_k=250, top_p=0.5),
                GenerationParams(temperature=0.7), GenerationParams(top_k=0, temperature=2.9), GenerationParams(top_k=1),
                GenerationParams(top_k=2, temperature=1 / 3)]
    for case in range(21):
        params = settings[case % len(settings)]
        windows = []
        for rows, scale in ((4, [3.0, 1.0, 7.77][case % 3]), (8, None), (2, 1.0)):
            logits = torch.randn((2 * rows if scale is not None else rows, vocab), generator=source) * 4
            logits[:, ::5] = torch.round(logits[:, ::5])
            windows.append((logits, scale))
        if case % 7 == 3:
            windows[1][0][2, 9] = float("nan")  # that window takes PyTorch's path alone; the others stay native
        shared = torch.Generator().manual_seed(case)
        mine = [shared, torch.Generator().manual_seed(100 + case), shared if case % 2 else None]
        theirs = [torch.Generator().manual_seed(case), torch.Generator().manual_seed(100 + case)]
        theirs.append(theirs[0] if case % 2 else None)
        default = torch.default_generator.get_state()
        want = _torch_codes(windows, params, theirs)
        after = torch.default_generator.get_state()
        torch.default_generator.set_state(default)
        got = guided_codes(windows, params, mine)
        assert torch.equal(got, want), case
        assert torch.equal(torch.default_generator.get_state(), after)
        assert all(torch.equal(a.get_state(), b.get_state()) for a, b in zip(mine[:2], theirs[:2], strict=True))
        if not 0 < params.top_p < 1:  # each window's whole draw is one native call
            assert native_sampling.draw(windows[0][0], torch.Generator(), guided=True,
                                        guidance_scale=windows[0][1], temperature=params.temperature,
                                        top_k=params.top_k) is not None
        # no margin: every row goes to PyTorch's race, on the E sampling.c drew (the fallback's own check)
        scores = torch.log_softmax(windows[1][0], dim=-1).contiguous()
        once, again = torch.Generator().manual_seed(case), torch.Generator().manual_seed(case)
        fallback = native_sampling.race(scores, [(once, 8)], slack=1.0)
        assert fallback is not None, "sampling.c's race did not run"  # the feature, not PyTorch's path
        assert torch.equal(fallback, native_sampling.race(scores, [(again, 8)]))


def test_a_windows_native_draw_with_no_margin_and_its_codes_each_their_own():
    """`native_sampling.draw` with no margin (every row PyTorch's race on the exponentials sampling.c drew)
    draws PyTorch's codes and moves the generator as PyTorch does; its codes tensors, made ahead in one
    block, are each a tensor of their own past the block's end (writing one changes no other)."""
    from daemon.native import sampling as native_sampling

    source = torch.Generator().manual_seed(21)
    params = GenerationParams()
    drawn = []
    for step in range(native_sampling.CODES_AHEAD + 3):
        logits = torch.randn((8, 2048), generator=source) * 4
        mine, theirs = torch.Generator().manual_seed(step), torch.Generator().manual_seed(step)
        codes = native_sampling.draw(logits, mine, guided=True, guidance_scale=3.0, temperature=params.temperature,
                                     top_k=params.top_k, slack=1.0 if step % 2 else native_sampling.RACE_SLACK)
        assert codes is not None, "sampling.c's draw did not run"
        assert torch.equal(codes, _torch_codes([(logits, 3.0)], params, [theirs])), step
        assert torch.equal(mine.get_state(), theirs.get_state()), step
        drawn.append((codes, codes.clone()))
    assert len({codes.data_ptr() for codes, _ in drawn}) == len(drawn)
    for codes, _ in drawn:
        codes.fill_(-5)
        assert all(torch.equal(other, want) for other, want in drawn if other is not codes)
        codes.copy_(next(want for other, want in drawn if other is codes))


def test_the_native_race_leaves_a_zero_exponential_to_pytorch():
    """u == 0 draws E == 0 (p / 0: inf, or NaN on a cut code, which argmax takes): the row goes to
    PyTorch's race, whatever it makes of it. The generator state is written to draw it at code 7."""
    from daemon.native import sampling as native_sampling

    scores = torch.randn((2, 2048), generator=torch.Generator().manual_seed(4))
    scores[:, 1::2] = float("-inf")
    state = torch.Generator().manual_seed(5).get_state()
    state[8:12] = torch.tensor([615], dtype=torch.int32).view(torch.uint8)  # left: 614 outputs before a refill
    state[16:24] = torch.tensor([10], dtype=torch.int64).view(torch.uint8)  # next: word 10
    for word in (10 + 2 * 7, 11 + 2 * 7):  # code 7's 64-bit draw: two zero words temper to zero
        state[24 + 8 * word:32 + 8 * word] = 0
    theirs, mine = torch.Generator(), torch.Generator()
    theirs.set_state(state.clone())
    mine.set_state(state.clone())
    probs = torch.softmax(scores, dim=-1)
    noise = torch.empty_like(probs).exponential_(1, generator=theirs)
    assert noise[0, 7] == 0
    want = (probs / noise).argmax(dim=-1)
    assert torch.equal(native_sampling.race(scores.contiguous(), [(mine, 2)]), want)
    assert torch.equal(mine.get_state(), theirs.get_state())


def test_the_race_checks_its_recipe_against_this_torch():
    """A recipe that draws other numbers than this torch's `exponential_` is refused (PyTorch's race runs)."""
    from daemon.native import sampling as native_sampling

    assert native_sampling._race_functions() is not None
    _, exponentials, _ = native_sampling._race_functions()
    assert native_sampling._exponentials_differ(exponentials, 5056) == ""

    def off_by_one(state, count, out):
        exponentials(state, count, out)
        torch.frombuffer((ctypes.c_float * count).from_address(out), dtype=torch.float32)[count // 2] += 1

    assert "other numbers" in native_sampling._exponentials_differ(off_by_one, 5056)
    assert "not 17 bytes" in native_sampling._exponentials_differ(exponentials, 17)


def test_a_seeded_native_job_draws_the_codes_pytorchs_race_draws(load_preset, monkeypatch):
    """A seeded int8a8+kv4 job (alone, and two streamed through the batch's shared steps) with sampling.c's race
    gives the codes and audio it gave with PyTorch's, for each sampling setting (default top-k, top-p,
    temperature, greedy, guidance 1.0)."""
    from daemon.models.musicgen.backend import MusicGen
    from daemon.models.musicgen.options import EngineOptions
    from daemon.native import sampling as native_sampling

    model = MusicGen(load_preset("debug/musicgen").bundle, engine=EngineOptions.parse("int8a8+kv4+nowarmup"))
    assert model.engine.decoder.native is not None
    settings = [dict(), dict(top_k=0, top_p=0.9), dict(temperature=0.7), dict(greedy=True), dict(guidance_scale=1.0)]

    def jobs() -> list:
        made = []
        for extra in settings:
            params = GenerationParams(duration_s=0.4, seed=77, **extra)
            made.append(model.generate(["synthwave"], params).codes)
            streams = [model.stream(text, params, batched=True, label=text) for text in ("techno", "ambient")]
            # interleaved: each stream's steps are the batch's shared ones (both stepping at once)
            chunks = [list(pair) for pair in zip(*streams, strict=False)]
            made.append(np.concatenate([c.audio for pair in chunks for c in pair], axis=1))
        return made

    native = jobs()
    monkeypatch.setattr(native_sampling, "race", lambda *args, **kwargs: None)
    for got, want in zip(jobs(), native, strict=True):
        assert torch.equal(got, want) if isinstance(got, torch.Tensor) else np.array_equal(got, want)
