"""+draft (speculative decoding): the acceptance rule keeps the target distribution, the checking
pass equals step-by-step decoding, and greedy generation gives float32's very codes in every mode."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from daemon.models.musicgen.codec import encode_prompt
from daemon.models.musicgen.conditioning import build_conditioning
from daemon.models.musicgen.delay import initial_columns, delays
from daemon.models.musicgen.engine import MusicgenEngine
from daemon.models.musicgen.sampling import speculative_accept
from daemon.models.musicgen.options import EngineOptions
from daemon.audio.types import Audio
from protocol.errors import Cancelled, InvalidArgument
from protocol.params import GenerationParams

FLOAT32 = EngineOptions(warmup=False)
DRAFT = EngineOptions(draft=True, warmup=False)


def test_accepted_codes_follow_the_target_not_the_draft():
    """Draws from a very different draft, passed through the rule, have the target's distribution."""
    rows, vocab = 200_000, 6
    target = torch.tensor([0.5, 0.2, 0.15, 0.1, 0.05, 0.0])
    draft = torch.tensor([0.05, 0.05, 0.1, 0.2, 0.3, 0.3])  # puts mass where the target has none
    generator = torch.Generator().manual_seed(3)
    drafted = torch.multinomial(draft, rows, replacement=True, generator=generator)
    codes, kept = speculative_accept(target.expand(rows, vocab), draft.expand(rows, vocab), drafted, generator)
    frequencies = torch.bincount(codes, minlength=vocab).double() / rows
    assert torch.allclose(frequencies, target.double(), atol=0.005), frequencies
    assert bool((codes[drafted == 5] != 5).all())  # never keeps a code the target rules out
    # Acceptance is sum(min(p, q)): 0.05 + 0.05 + 0.1 + 0.1 + 0.05 = 0.35 here.
    assert abs(kept.double().mean().item() - 0.35) < 0.01
    same, all_kept = speculative_accept(target.expand(100, vocab), target.expand(100, vocab),
                                        torch.zeros(100, dtype=torch.long), generator)
    assert bool(all_kept.all()) and torch.count_nonzero(same) == 0


def test_checking_pass_equals_one_step_at_a_time(load_preset):
    bundle = load_preset("debug/musicgen").bundle
    engine = MusicgenEngine(bundle, DRAFT).decoder
    cond = build_conditioning(bundle, ["an upbeat jazz tune", "drums"], guidance_scale=3.0)
    inputs = initial_columns(None, 2, bundle.num_codebooks, delays(bundle.num_codebooks, 1), bundle.pad_token_id,
                             bundle.device)
    columns = torch.randint(0, engine.vocab, (2, bundle.num_codebooks, 5), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        with engine.open_cache(4, 8) as cache:
            engine.prefill(cache, cond, inputs)
            together = engine.extend(cache, columns, 1)  # [N, T, K, V]
        with engine.open_cache(4, 8) as cache:
            engine.prefill(cache, cond, inputs)
            one_by_one = torch.stack([engine.step(cache, columns[..., t], 1 + t) for t in range(5)], dim=1)
    assert together.shape == one_by_one.shape == (4, 5, bundle.num_codebooks, engine.vocab)
    assert (together - one_by_one).abs().max() <= 1e-4 * one_by_one.abs().max()


def _tone(seconds: float, rate: int) -> Audio:
    t = np.arange(int(seconds * rate)) / rate
    return Audio((0.4 * np.sin(2 * np.pi * 220.0 * t))[None].astype(np.float32), rate)


@pytest.mark.parametrize("preset, texts, with_prompt", [
    ("debug/musicgen", ["an upbeat jazz tune with a walking bass", "drums"], False),
    ("debug/musicgen", ["strings"], True),  # the prompt's codes are forced through the delay ramp
    ("debug/musicgen-stereo", ["strings"], False),
    ("debug/musicgen-melody", ["folk guitar"], False),
])
def test_greedy_draft_gives_float32s_codes(load_preset, preset, texts, with_prompt):
    bundle = load_preset(preset).bundle
    reference, speculative = MusicgenEngine(bundle, FLOAT32), MusicgenEngine(bundle, DRAFT)
    cond = build_conditioning(bundle, texts, guidance_scale=3.0)
    prompt = encode_prompt(bundle, _tone(0.4, bundle.sample_rate)).expand(len(texts), -1, -1) if with_prompt else None
    params = GenerationParams(duration_s=1.2, greedy=True)
    want = torch.stack(list(reference.columns(cond, prompt, 60, params, None)), dim=-1)
    got = torch.stack(list(speculative.columns(cond, prompt, 60, params, None)), dim=-1)
    assert torch.equal(got, want)
    assert speculative.live_caches == 0 and speculative.draft.live_caches == 0


def test_sampled_draft_is_seeded_and_keeps_the_pattern(load_preset):
    bundle = load_preset("debug/musicgen").bundle
    speculative, reference = MusicgenEngine(bundle, DRAFT), MusicgenEngine(bundle, FLOAT32)
    cond = build_conditioning(bundle, ["noise"], guidance_scale=3.0)
    params = GenerationParams(duration_s=1.0, top_k=50, seed=5)

    def run(engine: MusicgenEngine, seed: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        return torch.stack(list(engine.columns(cond, None, 50, params, generator)), dim=-1)

    first, again, other = run(speculative, 5), run(speculative, 5), run(speculative, 6)
    assert torch.equal(first, again) and not torch.equal(first, other)
    plain = run(reference, 5)
    # The first column comes from the float32 model itself, with the same draw as plain float32.
    assert torch.equal(first[..., 0], plain[..., 0])
    # Pad where the delay pattern puts it, codes everywhere else.
    pad = plain == bundle.pad_token_id
    assert torch.equal(first == bundle.pad_token_id, pad)


def test_cancel_stops_a_round_and_frees_both_caches(load_preset):
    bundle = load_preset("debug/musicgen").bundle
    speculative = MusicgenEngine(bundle, DRAFT)
    cond = build_conditioning(bundle, ["noise"], guidance_scale=3.0)
    seen = []
    with pytest.raises(Cancelled):
        for column in speculative.columns(cond, None, 200, GenerationParams(duration_s=4.0, top_k=50), None,
                                          should_stop=lambda: len(seen) >= 7):
            seen.append(column)
    assert len(seen) == 7
    assert speculative.live_caches == 0 and speculative.draft.live_caches == 0


def test_draft_options_are_validated():
    assert EngineOptions.parse("float32+draft") == EngineOptions(draft=True)
    assert EngineOptions(draft=True).name == "float32+draft"
    for bad in ("int8+draft", "float32+draft+compile"):
        with pytest.raises(InvalidArgument, match="draft"):
            EngineOptions.parse(bad).validate(torch.device("cpu"))


def test_daemon_serves_float32_draft_with_float32s_audio(tmp_path, riffd_cache, load_preset):
    """`riffd serve --engine float32+draft`, for real over ZeroMQ: greedy audio equal to float32's."""
    from clients import Client
    from daemon.child import DaemonChild
    from daemon.models.musicgen.backend import MusicGen

    # The session's presets without its engine calibrations: one that measured +draft slower than
    # float32 on this machine would (rightly) serve float32 instead.
    bundle = load_preset("debug/musicgen").bundle  # built in the session's cache
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "presets").symlink_to(riffd_cache / "presets")
    daemon = DaemonChild(["--model", "debug/musicgen", "--device", "cpu", "--engine", "float32+draft",
                          "--cache-dir", str(cache), "--out", str(tmp_path), "--osc-port", "0", "--zmq-port", "0"])
    try:
        with Client(daemon.zmq, timeout_s=60) as client:
            rendered = client.generate("a walking bass", 1.5, greedy=True).collect()
    finally:
        assert daemon.stop() == 0
    assert any("engine float32+draft warmed up" in line for line in daemon.log), "".join(daemon.log)
    model = MusicGen(bundle, engine=FLOAT32)
    params = GenerationParams(duration_s=1.5, greedy=True)
    expected = np.concatenate([chunk.audio for chunk in model.stream("a walking bass", params)], axis=1)
    assert rendered.audio.shape == expected.shape and rendered.sample_rate == model.bundle.sample_rate
    np.testing.assert_array_equal(rendered.audio, expected)
