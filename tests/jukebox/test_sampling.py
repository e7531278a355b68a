"""Sampling: seeded tokens equal the reference's, and the controls do what they say."""

import os

import pytest
import torch

from daemon.models.jukebox import LevelSampled, SamplingCancelled, WindowSampled
from daemon.models.jukebox.sampler import filter_logits, window_starts

LENGTH = 16384


def empty(n=1):
    return torch.zeros(n, 0, dtype=torch.long)


def test_ancestral_matches_reference(model, expected, labels, meta):
    torch.manual_seed(meta["seed_sample"])
    tokens = model.ancestral_sample(labels, sample_levels=[0, 1, 2], sample_length=LENGTH)
    for level in range(3):
        assert torch.equal(tokens[level], expected[f"ancestral_{level}"]), level
    audio = model.decode([tokens[2]], start_level=0)
    torch.testing.assert_close(audio, expected["ancestral_audio"], atol=1e-5, rtol=0)


def test_seed_argument_reproduces_reference_without_global_state(model, expected, labels, meta):
    torch.manual_seed(1234)
    state = torch.get_rng_state()
    tokens = model.ancestral_sample(labels, sample_length=LENGTH, seed=meta["seed_sample"])
    assert torch.equal(torch.get_rng_state(), state)
    for level in range(3):
        assert torch.equal(tokens[level], expected[f"ancestral_{level}"]), level


def test_continue_sample_matches_reference(model, expected, labels, meta):
    torch.manual_seed(meta["seed_sample"] + 2)
    prime = torch.rand(1, 4096, 1) * 2 - 1  # drawn as the reference drew it, before sampling
    assert torch.equal(prime, expected["prime_audio"])
    codes = model.vqvae.encode(prime)[::-1]
    tokens = model.continue_sample(codes, labels, sample_length=LENGTH)
    for level in range(3):
        assert torch.equal(tokens[level], expected[f"continue_{level}"]), level
        assert torch.equal(tokens[level][:, : codes[level].shape[1]], codes[level])


def test_two_jobs_interleaved_do_not_disturb_each_other(model, labels):
    def job(seed):
        # a high temperature, so that two seeds give different tokens even with this tiny model
        return model.sample_windows(
            [empty()] * 3, labels, sample_levels=[0, 1], sample_length=LENGTH, seed=seed, sampling_temperature=4.0
        )

    alone = [list(job(seed))[-1].music_tokens for seed in (5, 6)]
    a, b = job(5), job(6)
    last = {}
    for event_a, event_b in zip(a, b):  # alternate windows of the two jobs
        last["a"], last["b"] = event_a, event_b
    for rest in a:
        last["a"] = rest
    for rest in b:
        last["b"] = rest
    for level in range(2):
        assert torch.equal(last["a"].music_tokens[level], alone[0][level])
        assert torch.equal(last["b"].music_tokens[level], alone[1][level])
    assert not torch.equal(alone[0][1], alone[1][1])


def test_stream_events_progress_and_window_schedule(model, labels):
    progress = []
    events = list(
        model.sample_windows(
            [empty()] * 3, labels, sample_length=LENGTH, seed=0, progress=lambda d, t: progress.append((d, t))
        )
    )
    level_done = [i for i, e in enumerate(events) if isinstance(e, LevelSampled)]
    assert [events[i].level for i in level_done] == [0, 1, 2]
    windows = [e for e in events if isinstance(e, WindowSampled)]
    # hop fractions 0.125 / 0.5 / 0.5 of 128 / 64 / 64 tokens
    assert [sum(w.level == lvl for w in windows) for lvl in range(3)] == [
        1, len(window_starts(512, 64, 32)), len(window_starts(2048, 64, 32))
    ]
    # the top level is complete before any lower window: a preview can be decoded first
    assert level_done[0] < next(i for i, e in enumerate(events) if getattr(e, "level", 0) == 1)
    total = 128 + 512 + 2048
    assert progress[-1] == (total, total)
    assert all(t == total for _, t in progress) and [d for d, _ in progress] == sorted(d for d, _ in progress)
    bottom = [w for w in windows if w.level == 2]
    assert sum(w.new_tokens.shape[1] for w in bottom) == 2048
    assert bottom[-1].end == 2048 and bottom[1].start == 32
    preview = model.decode_level(events[level_done[0]].music_tokens, 0)
    assert preview.shape == (1, LENGTH, 1)


def test_cancel_within_a_window(model, labels):
    calls = []

    def should_stop():
        calls.append(1)
        return len(calls) > 40

    with pytest.raises(SamplingCancelled) as cancelled:
        model.ancestral_sample(labels, sample_length=LENGTH, seed=0, should_stop=should_stop)
    assert len(calls) == 41  # checked before every token, stopped in the first (top) window
    assert [t.shape[1] for t in cancelled.value.music_tokens] == [0, 0, 0]


def test_cancel_between_windows_keeps_finished_windows(model, labels):
    stop = {"now": False}
    stream = model.sample_windows(
        [empty()] * 3, labels, sample_levels=[0, 1], sample_length=LENGTH, seed=0, should_stop=lambda: stop["now"]
    )
    for event in stream:
        if isinstance(event, WindowSampled) and event.level == 1:
            stop["now"] = True
            break
    with pytest.raises(SamplingCancelled) as cancelled:
        next(stream)
    assert [t.shape[1] for t in cancelled.value.music_tokens] == [128, 64, 0]


def test_length_in_seconds(model, labels):
    tokens = model.ancestral_sample(labels, sample_levels=[0], sample_length_in_seconds=0.2, seed=0)
    assert tokens[0].shape == (1, int(0.2 * 44100) // 128)  # 68 tokens: a partial window


def test_short_piece_and_batch(model, labels):
    tokens = model.ancestral_sample(labels, n_samples=2, sample_length=40 * 128, seed=3)
    assert [t.shape for t in tokens] == [(2, 40), (2, 160), (2, 640)]
    again = model.ancestral_sample(labels, n_samples=2, sample_length=40 * 128, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(tokens, again))


def test_hop_fraction_sets_the_windows(model, labels, expected):
    top = expected["upsample_in_top"]
    events = list(
        model.sample_windows(
            [top, empty(), empty()], labels, sample_levels=[1], sample_length=LENGTH, seed=0,
            hop_fraction=(0.125, 1.0, 0.5),
        )
    )
    assert [(e.start, e.end) for e in events if isinstance(e, WindowSampled)] == [(s, s + 64) for s in range(0, 512, 64)]


def test_top_k_one_is_greedy(model, labels, expected):
    top = expected["upsample_in_top"]
    tokens = model.upsample([top, empty(), empty()], labels, sample_levels=[1], sample_length=64 * 32, top_k=1, seed=0)
    prior = model.priors[1]
    metadata = prior.window_metadata(labels[1], 0, 64 * 32, 0)
    logits = prior.teacher_forced_logits(tokens[1], prior.upper_window(top, 0, 64), metadata)
    assert torch.equal(logits.argmax(-1), tokens[1])


def test_music_codes_only(model, labels, expected):
    # with the reference's draw, this tiny top prior mostly draws lyric ids, which become code 0
    assert (expected["ancestral_0"] == 0).float().mean() > 0.9
    tokens = model.ancestral_sample(labels, sample_levels=[0], sample_length=LENGTH, seed=1, music_codes_only=True)[0]
    assert (tokens == 0).float().mean() < 0.5
    assert len(tokens.unique()) > 1


def test_filter_logits():
    logits = torch.tensor([[[1.0, 3.0, 2.0, 0.0]]])
    assert torch.isfinite(filter_logits(logits, top_k=2)).tolist() == [[[False, True, True, False]]]
    probs = torch.softmax(logits, -1)[0, 0]  # 0.09, 0.64, 0.24, 0.03
    kept = torch.isfinite(filter_logits(logits, top_p=0.7))[0, 0].tolist()
    assert kept == [False, True, True, False] and probs[1] < 0.7 <= probs[1] + probs[2]
    assert torch.isfinite(filter_logits(logits, top_p=0.5)).sum() == 1


def test_nothing_is_written_to_disk(model, labels, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model.ancestral_sample(labels, sample_levels=[0], sample_length=LENGTH, seed=0)
    assert os.listdir(tmp_path) == []
    with pytest.raises(ValueError, match="nothing to disk"):
        model.ancestral_sample(labels, sample_levels=[0], sample_length=LENGTH, save_results=True)


@pytest.mark.parametrize(
    "kwargs, error",
    [
        (dict(sampling_temperature=0.0), ValueError),
        (dict(top_p=1.5), ValueError),
        (dict(hop_fraction=(0.5, 0.0, 0.5)), ValueError),
        (dict(hop_fraction=(0.5, 0.5)), ValueError),
        (dict(sample_length=100), ValueError),
        (dict(sample_length=600 * 44100), ValueError),
        (dict(temprature=0.9), TypeError),
    ],
)
def test_bad_arguments(model, labels, kwargs, error):
    with pytest.raises(error):
        model.ancestral_sample(labels, **{"sample_length": LENGTH, **kwargs})


def test_bad_batch_and_audio(model, labels):
    with pytest.raises(ValueError, match="n_samples"):
        model.ancestral_sample(labels, n_samples=0, sample_length=LENGTH)
    with pytest.raises(ValueError, match=r"\[batch, samples, 1\]"):
        model.primed_sample(torch.zeros(1, 4096), labels, sample_length=LENGTH)
    with pytest.raises(ValueError, match="at least 128 samples"):
        model.primed_sample(torch.zeros(1, 100, 1), labels, sample_length=LENGTH)
    with pytest.raises(ValueError, match="sample level 3"):
        model.ancestral_sample(labels, sample_levels=[3], sample_length=LENGTH)


def test_min_duration_override_checked(fixture_dir, labels):
    from daemon.models.jukebox import JukeboxModel

    strict = JukeboxModel.from_pretrained(fixture_dir, min_duration=1.0)
    with pytest.raises(ValueError, match="min_duration=0"):
        strict.ancestral_sample(labels, sample_length=LENGTH)


def test_bad_labels(model, labels, fixture_dir):
    from daemon.models.jukebox import JukeboxTokenizer

    five_genres = JukeboxTokenizer.from_pretrained(fixture_dir)(artist="x", genres="y", lyrics="abc")["input_ids"]
    with pytest.raises(ValueError, match="n_genres"):
        model.ancestral_sample(five_genres, sample_length=LENGTH)
    with pytest.raises(ValueError, match="one label tensor per prior"):
        model.ancestral_sample(labels[:2], sample_length=LENGTH)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_priors(fixture_dir, expected, labels, dtype):
    from daemon.models.jukebox import JukeboxModel

    half = JukeboxModel.from_pretrained(fixture_dir, dtype=dtype)
    assert half.priors[0].prior.embed_tokens.weight.dtype == dtype
    assert half.vqvae.decoders[0].out.weight.dtype == torch.float32  # codes must not move
    prior = half.priors[1]
    metadata = prior.window_metadata(labels[1], 0, LENGTH, 0)
    logits = prior.teacher_forced_logits(expected["prior1_in_tokens"], prior.upper_window(expected["prior1_upper_0"], 0, 64), metadata)
    reference = expected["prior1_logits"]
    assert logits.dtype == dtype
    assert (logits.float() - reference).abs().max() < 0.01 * reference.abs().max()
    tokens = half.ancestral_sample(labels, sample_length=32 * 128, seed=1)
    assert [t.shape[1] for t in tokens] == [32, 128, 512]


def test_streaming_leaves_grad_mode_alone(model, labels):
    modes = [torch.is_grad_enabled() for _ in model.sample_windows([empty()] * 3, labels, sample_levels=[0], sample_length=LENGTH, seed=0)]
    assert all(modes)
