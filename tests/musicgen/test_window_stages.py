"""The playing window's cache in stages (handoff.WINDOW_STAGE_POSITIONS): its rows step in views of the
window's cache laid out for the positions so far, moved on as it fills, and a job's audio and every
slot of every window are the bits the window-sized cache gives (a slot moved wrong changes them)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from daemon.models.musicgen import batch as batch_module
from daemon.models.musicgen import handoff, kv_cache
from daemon.models.musicgen.backend import MusicGen
from daemon.models.musicgen.options import EngineOptions
from daemon.models.musicgen.streaming_codec import StreamSettings
from protocol.params import GenerationParams
from tests.musicgen.test_handoff import SAMPLED, _assert_all_freed, _assert_same_seams, _context_slots
from tests.musicgen.test_native import _kernel_runs_here

STAGE = 7  # positions a stage: a 63-position window steps in views of 7, 14, ... 56, then the window's own
MODES = ["int8", "int8a8+kv4"]


def _model(load_preset, mode: str) -> MusicGen:
    bundle = dataclasses.replace(load_preset("debug/musicgen").bundle, window_frames=60)
    model = MusicGen(bundle, engine=EngineOptions.parse(mode + "+nowarmup"),
                     stream_settings=StreamSettings(first_chunk_frames=5, chunk_frames=20), max_batch=2)
    if model.engine.decoder.native is None:
        pytest.skip(f"riffd's native step cannot run here: {_kernel_runs_here()}")  # the stages are its
    return model


def _record(monkeypatch) -> tuple[list[list[torch.Tensor]], list[tuple[int, int]]]:
    """Each ended window's slots (`_context_slots` of the cache its rows stepped in last, every position
    written), and each move's (from, to) positions."""
    ended: list[list[torch.Tensor]] = []
    moves: list[tuple[int, int]] = []
    free_view, move = batch_module._free_view, handoff.move_slots

    def freed(stream, whole):
        ended.append(_context_slots(stream.cache, stream.first_slot + stream.step - 1))
        free_view(stream, whole)

    def moved(source, target, positions):
        moves.append((source.max_positions, target.max_positions))
        move(source, target, positions)

    monkeypatch.setattr(batch_module, "_free_view", freed)
    monkeypatch.setattr(handoff, "move_slots", moved)
    return ended, moves


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("batched", [False, True])
def test_a_long_job_stepping_in_stages_keeps_the_window_sized_caches_slots_and_audio(load_preset, monkeypatch,
                                                                                   mode, batched):
    """Four windows, three seams: the first window's view grows from 7 positions, each later one starts
    from its riding view (moved on to the window's first stage, not to the window's layout); every slot
    of every window ends as the window-sized cache's, and the audio is the same."""
    monkeypatch.setattr(kv_cache, "INT8_HEAD_POSITIONS", 5)  # +kv4: later slots in 4 bits, a head of 5 in int8
    monkeypatch.setattr(handoff, "RIDE_STAGE_POSITIONS", STAGE)
    model = _model(load_preset, mode)
    ended, moves = _record(monkeypatch)
    runs = {}
    for stage in (0, STAGE):
        monkeypatch.setattr(handoff, "WINDOW_STAGE_POSITIONS", stage)
        ended.clear()
        moves.clear()
        audio = np.concatenate([c.audio for c in model.stream("a long drone", SAMPLED, batched=batched, label="job")],
                               axis=1)
        runs[stage] = (audio, list(ended), list(moves))
    def stages(start: int, end: int) -> list[tuple[int, int]]:
        return [(s, min(s + STAGE, end)) for s in range(start, end, STAGE)]

    # Windows of 63 positions (60 frames, the delay pattern's 3), the last of 48; the riding context (20
    # columns) grows to 21 positions, then moves to the window's layout, or stays where the window's
    # first stage is the riding one (its first step writes slot 20) and grows on as the window fills.
    riding = [(7, 14), (14, 21)]
    assert runs[0][2] == (riding + [(21, 63)]) * 2 + riding + [(21, 48)]
    assert sorted(runs[STAGE][2]) == sorted(stages(7, 63) + riding * 3 + stages(21, 63) * 2 + stages(21, 48))
    assert len(runs[0][1]) == len(runs[STAGE][1]) == 4
    _assert_same_seams(runs[0][1], runs[STAGE][1])
    np.testing.assert_array_equal(runs[STAGE][0], runs[0][0])
    _assert_all_freed(model)


@pytest.mark.parametrize("mode", MODES)
def test_a_condition_swapped_between_steps_moves_on_with_the_slots(load_preset, monkeypatch, mode):
    """A jam's live prompt change (`BatchStream.between_steps`) replaces the cross-attention tensors of the
    view the rows step in, not the window's cache's: the next stage's view keeps the new ones (a stage
    taking the window's cache's would step under the old condition, or none), so the codes are the
    window-sized cache's, and differ from those without the swap."""
    from daemon.models.musicgen.conditioning import build_conditioning
    from daemon.seeds import seeded_rng

    monkeypatch.setattr(kv_cache, "INT8_HEAD_POSITIONS", 5)
    model = _model(load_preset, mode)
    bundle, decoder = model.bundle, model.engine.decoder
    first = build_conditioning(bundle, ["an upbeat jazz tune"], guidance_scale=3.0)
    second = build_conditioning(bundle, ["slow dark ambient drones with a long text prompt"], guidance_scale=3.0)
    params = GenerationParams(duration_s=1.0, seed=5, top_k=50)
    ended, moves = _record(monkeypatch)

    def run(stage: int, swap_at: int | None) -> torch.Tensor:
        monkeypatch.setattr(handoff, "WINDOW_STAGE_POSITIONS", stage)
        joined = []

        def timed(step: int, seconds: float, riding: int) -> None:
            if step == swap_at:  # before step swap_at + 1 (slot swap_at + 1): in the view of 14, the next its
                stream = joined[0]
                assert (stream.whole is not None) == (stage > 0) and stream.cache.max_positions == (14 if stage else 43)
                stream.between_steps(lambda: decoder.set_condition(stream.cache, second))

        moves.clear()
        columns = list(model.batch.columns(bundle, first, None, 40, params, seeded_rng(5), on_join=joined.append,
                                           timed=timed, label="jam"))
        return torch.stack(columns, dim=-1)

    kept = run(0, None)
    swapped = run(0, 10)
    staged = run(STAGE, 10)
    assert moves == [(s, s + STAGE) for s in range(STAGE, 42, STAGE)] + [(42, 43)]  # 43: 40 frames and 3 delays
    assert not torch.equal(kept, swapped)
    torch.testing.assert_close(staged, swapped, rtol=0, atol=0)
    assert len(ended) == 3
    assert all(torch.equal(a, b) for a, b in zip(ended[1], ended[2], strict=True))
    _assert_all_freed(model)
