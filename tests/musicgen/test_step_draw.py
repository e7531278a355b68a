"""The shared step as one native call (step_draw.py): the codes, generator states and caches of the calls one
by one (`MusicgenDecoder.step_streams` then `loop.next_columns`), to the bit, for windows that share torch's
default generator and sample otherwise (drawn in next_columns' order), a next window riding keys-only, rows
the race leaves undecided, and a window whose scores hold a NaN."""

from __future__ import annotations

import dataclasses
from contextlib import ExitStack

import pytest
import torch

from daemon.models.musicgen import kv_cache
from daemon.models.musicgen.conditioning import build_conditioning
from daemon.models.musicgen.delay import WindowPattern
from daemon.models.musicgen.engine import MusicgenEngine
from daemon.models.musicgen.handoff import share_condition
from daemon.models.musicgen.loop import WindowSampler, next_columns
from daemon.models.musicgen.options import EngineOptions
from daemon.models.musicgen.step_draw import StepDraw
from daemon.native import sampling as native_sampling
from protocol.params import GenerationParams
from tests.musicgen.test_native import _kernel_runs_here
from tests.musicgen.test_native_batch import clone_cache

pytestmark = pytest.mark.skipif(_kernel_runs_here() is not None, reason=f"native int8 kernel: {_kernel_runs_here()}")


def _slots(cache):
    return [t.view(torch.uint8) for t in cache.keys + cache.values + cache.key_scales + cache.value_scales]


@pytest.mark.parametrize("case", ["decided", "undecided", "nan"])
def test_one_call_gives_the_codes_states_and_caches_of_the_calls_one_by_one(load_preset, monkeypatch, case):
    monkeypatch.setattr(kv_cache, "INT8_HEAD_POSITIONS", 4)  # +kv4: later slots in 4 bits
    bundle = load_preset("debug/musicgen").bundle
    decoder = MusicgenEngine(bundle, EngineOptions.parse("int8a8+kv4+nowarmup")).decoder
    step_draw = StepDraw.build(decoder)
    assert step_draw is not None
    books, vocab = bundle.num_codebooks, decoder.vocab
    finished: list[int] = []
    finish = native_sampling.finish

    def counted_finish(codes, undecided, *args):
        finished.append(undecided)
        return finish(codes, undecided, *args)

    monkeypatch.setattr(native_sampling, "finish", counted_finish)
    if case == "undecided":  # every row's winner within the slack: PyTorch races each on its very exponentials
        monkeypatch.setattr(native_sampling, "RACE_SLACK", 1e30)
    # A samples on its own generator; B and C on torch's default one, C alike A: next_columns draws A, C, B.
    settings = [(GenerationParams(top_k=50, temperature=0.9, guidance_scale=3.0), 3.0, True),
                (GenerationParams(top_k=20, temperature=1.1, guidance_scale=2.0), 2.0, False),
                (GenerationParams(top_k=50, temperature=0.9, guidance_scale=1.0), 1.0, False)]
    seed = torch.Generator().manual_seed(7)
    with torch.inference_mode(), ExitStack() as windows:
        conds = [build_conditioning(bundle, [text], guidance_scale=scale) for text, (_, scale, _) in
                 zip(("drums", "a jig", "bass"), settings)]
        caches = []
        for cond in conds:
            cache = windows.enter_context(decoder.open_cache(cond.hidden_states.shape[0], 24))
            decoder.prefill(cache, cond, torch.randint(0, bundle.pad_token_id, (1, books, 5), generator=seed))
            caches.append(cache)
        riding = windows.enter_context(decoder.open_cache(2, 24))  # a next window, keys only
        share_condition(caches[0], riding)
        theirs = [clone_cache(cache) for cache in caches + [riding]]
        theirs[3].cross_keys, theirs[3].cross_values = theirs[0].cross_keys, theirs[0].cross_values
        theirs[3].cross_mask = theirs[0].cross_mask

        def samplers(generator):
            return [WindowSampler(WindowPattern.plan(None, 1, books, bundle.audio_channels, 40, bundle.pad_token_id,
                                                     decoder.device), 1, books, vocab, cond.guided, params,
                                  generator if own else None)
                    for cond, (params, _, own) in zip(conds, settings)]

        mine_samplers, their_samplers = samplers(torch.Generator().manual_seed(1)), samplers(torch.Generator().manual_seed(1))
        torch.manual_seed(3)
        columns = [torch.randint(0, bundle.pad_token_id, (1, books), generator=seed) for _ in range(4)]
        nan_step = 5
        for step in range(4, 10):
            positions = [5 + step - 4] * 3 + [step - 4]
            if case == "nan" and step == nan_step:
                # A's scores all NaN (the quantised products keep NaN out of the logits: a NaN guidance scale, past
                # GenerationParams' checks): drawn first, it stops the call's draws, and A, C and B (those two on
                # one generator) are drawn in that order through the calls one by one
                for sampler in (mine_samplers[0], their_samplers[0]):
                    sampler.params = dataclasses.replace(sampler.params)
                    object.__setattr__(sampler.params, "guidance_scale", float("nan"))
            default = torch.default_generator.get_state()
            with torch.inference_mode(False):  # as the batch calls it
                mine = step_draw.columns(caches + [riding], columns, positions, mine_samplers)
            assert mine is not None
            after = torch.default_generator.get_state()
            torch.default_generator.set_state(default)
            logits = decoder.step_streams(theirs, columns, positions, logit_windows=3)
            made = next_columns(their_samplers, [step] * 3, logits)
            assert torch.equal(torch.default_generator.get_state(), after), f"step {step}"
            assert torch.equal(mine_samplers[0].rng.get_state(), their_samplers[0].rng.get_state()), f"step {step}"
            for index, (codes, column) in enumerate(zip(mine, made, strict=True)):
                assert torch.equal(mine_samplers[index].column(step, codes), column), f"step {step}, window {index}"
            for cache, own in zip(caches + [riding], theirs):
                assert all(torch.equal(a, b) for a, b in zip(_slots(cache), _slots(own)))
            if case == "nan" and step == nan_step:
                buffers = decoder.native._batch(caches + [riding]).kept[step_draw]
                assert [draw.undecided for draw in buffers.draws] == [-1, -2, -2]  # A, C, B
                break
            # fed back as the batch does: the codes themselves past the pattern's ramp (the call knows them)
            columns = [sampler.pattern.column(step, codes, owned=True) for sampler, codes in zip(mine_samplers, mine)]
            assert all(column is codes for column, codes in zip(columns, mine))
            columns.append(made[0].clone())
    if case == "undecided":
        assert any(count > 0 for count in finished)
    else:
        assert not any(finished)  # MusicGen's random scores: every winner decided in C


def test_a_step_it_does_not_take_is_left_to_the_calls_one_by_one(load_preset):
    bundle = load_preset("debug/musicgen").bundle
    decoder = MusicgenEngine(bundle, EngineOptions.parse("int8a8+kv4+nowarmup")).decoder
    step_draw = StepDraw.build(decoder)
    assert step_draw is not None
    books = bundle.num_codebooks
    with torch.inference_mode(), ExitStack() as windows:
        cond = build_conditioning(bundle, ["drums"], guidance_scale=3.0)
        cache = windows.enter_context(decoder.open_cache(2, 12))
        decoder.prefill(cache, cond, torch.zeros((1, books, 1), dtype=torch.long))
        pattern = WindowPattern.plan(None, 1, books, bundle.audio_channels, 8, bundle.pad_token_id, decoder.device)
        column = torch.zeros((1, books), dtype=torch.long)
        for params in (GenerationParams(top_p=0.9), GenerationParams(greedy=True)):
            sampler = WindowSampler(pattern, 1, books, decoder.vocab, True, params, None)
            assert step_draw.columns([cache], [column], [1], [sampler]) is None
        sampler = WindowSampler(pattern, 1, books, decoder.vocab, True, GenerationParams(top_k=50), None)
        assert step_draw.columns([cache], [column.to(torch.int32)], [1], [sampler]) is None  # not int64 codes
        assert step_draw.columns([cache], [column], [12], [sampler]) is None  # past the cache: refused in C
        assert step_draw.columns([cache], [column], [1], [sampler]) is not None
