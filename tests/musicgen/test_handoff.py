"""The long-form hand-off (handoff.py): a window after the first is warmed by the one before, its
context riding that window's steps, and starts without a prefill; its codes are the prefill's
(greedy, on the tiny model: measured equal), a stop at any point frees every cache, and a seeded
job keeps its audio whoever shares its steps."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from daemon.models.musicgen import backend as backend_module
from daemon.models.musicgen import kv_cache
from daemon.models.musicgen.backend import MusicGen
from daemon.models.musicgen.options import EngineOptions
from daemon.models.musicgen.streaming_codec import StreamSettings
from protocol.errors import Cancelled
from protocol.params import GenerationParams
from tests.musicgen.test_batch import Take, _together
from tests.musicgen.test_native import _kernel_runs_here

# Windows of 60 frames continuing the last 20: 3.3 s is four windows, three seams.
GREEDY = GenerationParams(duration_s=3.3, greedy=True, extend_stride_s=0.8)
SAMPLED = GenerationParams(duration_s=3.3, seed=7, top_k=50, extend_stride_s=0.8)
WINDOW_STEPS = 60 + 3  # the first window's steps: its frames and the delay pattern's ramp


def _model(load_preset, mode: str) -> MusicGen:
    bundle = dataclasses.replace(load_preset("debug/musicgen").bundle, window_frames=60)
    model = MusicGen(bundle, engine=EngineOptions.parse(mode + "+nowarmup"),
                     stream_settings=StreamSettings(first_chunk_frames=5, chunk_frames=20))
    if mode != "float32" and model.engine.decoder.native is None:
        pytest.skip(f"riffd's native step cannot run here: {_kernel_runs_here()}")  # the hand-off rides it
    return model


def _count_prefills(model: MusicGen, monkeypatch) -> list[int]:
    decoder, calls = model.engine.decoder, []
    prefill = decoder.prefill

    def counted(cache, cond, inputs):
        calls.append(inputs.shape[-1])
        return prefill(cache, cond, inputs)

    monkeypatch.setattr(decoder, "prefill", counted)
    return calls


def _assert_all_freed(model: MusicGen) -> None:
    snapshot = model.batch.snapshot()
    assert snapshot.streams == () and snapshot.cache_bytes == 0 and model.engine.live_caches == 0


@pytest.mark.parametrize("mode", ["int8a8+kv4", "int8", "int4"])
def test_windows_start_without_a_prefill_and_keep_the_prefills_greedy_codes(load_preset, monkeypatch, mode):
    monkeypatch.setattr(kv_cache, "INT8_HEAD_POSITIONS", 5)  # +kv4: the context's later slots in 4 bits
    model = _model(load_preset, mode)
    prefills = _count_prefills(model, monkeypatch)
    handed = model.generate(["a long drone"], GREEDY)
    assert len(handed.windows) == 4 and prefills == []  # no window prefilled its 20 frames of context
    batched = np.concatenate([c.audio for c in model.stream("a long drone", GREEDY, batched=True, label="job")], axis=1)
    alone = np.concatenate([c.audio for c in model.stream("a long drone", GREEDY)], axis=1)
    assert prefills == []
    _assert_all_freed(model)
    monkeypatch.setattr(backend_module, "hands_off", lambda decoder, cond: False)
    prefilled = model.generate(["a long drone"], GREEDY)
    assert prefills == [1, 21, 21, 21]  # today's path: the text prompt's BOS, then BOS and 20 context columns a seam
    # The step fills the cache with other rounding than the prefill; greedy, the codes are the same here
    # (random/musicgen-small: bench.handoff_agreement).
    torch.testing.assert_close(handed.codes, prefilled.codes, rtol=0, atol=0)
    # Batched or not, the very same audio (both hand off).
    np.testing.assert_array_equal(batched, alone)


def test_float32_keeps_the_prefill(load_preset, monkeypatch):
    model = _model(load_preset, "float32")
    prefills = _count_prefills(model, monkeypatch)
    model.generate(["a long drone"], GREEDY)
    assert prefills == [1, 21, 21, 21]  # bit-exact with transformers' prefill, window after window


@pytest.mark.parametrize("stop_at", [30, WINDOW_STEPS, WINDOW_STEPS + 1])
@pytest.mark.parametrize("batched", [False, True])
def test_a_job_stopped_during_or_at_a_hand_off_frees_both_windows(load_preset, stop_at, batched):
    model = _model(load_preset, "int8a8+kv4")
    steps: list[int] = []
    caches: list[int] = []

    def progress(done: int, total: int) -> None:
        steps.append(done)
        caches.append(model.engine.live_caches)

    with pytest.raises(Cancelled):
        for _ in model.stream("drums", SAMPLED, progress=progress, should_stop=lambda: bool(steps) and steps[-1] >= stop_at,
                              batched=batched, label="job"):
            pass
    assert steps[-1] == stop_at
    assert max(caches) == 2  # the window playing and the next one warming
    _assert_all_freed(model)


def test_two_long_jobs_handing_off_together_keep_their_audio_alone(load_preset, monkeypatch):
    model = _model(load_preset, "int8a8+kv4")
    decoder = model.engine.decoder
    rows_seen: list[int] = []
    row_batch = decoder.native._batch  # the windows of each native step (whichever call steps them)

    def spied(caches):
        rows_seen.append(len(caches))
        return row_batch(caches)

    monkeypatch.setattr(decoder.native, "_batch", spied)
    takes = [Take("a", "an upbeat jazz tune", GenerationParams(duration_s=2.0, seed=3, top_k=50, temperature=0.9,
                                                                         extend_stride_s=0.8)),
             Take("b", "drums", GenerationParams(duration_s=1.8, seed=4, top_p=0.9, extend_stride_s=0.8),
                  start_after=("a", 5))]
    alone = {take.name: np.concatenate([c.audio for c in model.stream(take.text, take.params)], axis=1)
             for take in takes}
    rows_seen.clear()
    together, most = _together(model, takes)
    assert most == 2
    # Two jobs, each window carrying the next one's context: four caches in one step.
    assert max(rows_seen) == 4
    for name, audio in alone.items():
        np.testing.assert_array_equal(together[name], audio, err_msg=name)
    _assert_all_freed(model)


def test_an_offered_context_column_is_padded_in_the_ramp_on_a_copy_and_the_column_itself_past_it():
    """`Warming.offer`: the next window's context column c is the current window's column c + shift, its
    codebooks still in the BOS ramp (frame c - 1 - delay_k < 0) at the pad code, on a copy that leaves
    the current window's column as it was; past the ramp the very column (nothing writes a made one)."""
    from contextlib import ExitStack

    from daemon.models.musicgen.delay import delays
    from daemon.models.musicgen.handoff import NextWindow, Warming
    from daemon.models.musicgen.longform import Window

    pad, shift = 2048, 10
    warming = Warming(NextWindow(Window(1, 8, 20, 10), shift, None), None, ExitStack(), delays(4, 1), pad,  # type: ignore[arg-type]
                      pending=[torch.full((1, 4), pad)], columns=1)
    warming.fed_queued(1)
    generator = torch.Generator().manual_seed(4)
    for index in range(1, 8):
        column = torch.randint(0, 2048, (1, 4), generator=generator)
        kept = column.clone()
        warming.offer(index + shift, column)
        assert len(warming.pending) == 1 and torch.equal(column, kept)
        ramp = torch.arange(4) > index - 1
        assert torch.equal(warming.pending[0], torch.where(ramp, pad, column))
        assert (warming.pending[0] is column) == (not bool(ramp.any()))
        warming.fed_queued(1)


@pytest.mark.parametrize("columns", [1, 3, 8])
def test_a_warming_window_feeds_its_columns_k_at_a_time_and_what_is_left_with_its_last(columns):
    """`Warming.due`: nothing until `columns` are queued, then all of them; the context's last column
    flushes what is queued (the window after needs its whole context when the current one ends),
    and a column out of turn (one offered while the queue is full) breaks the hand-off."""
    from contextlib import ExitStack

    from daemon.models.musicgen.delay import delays
    from daemon.models.musicgen.handoff import NextWindow, Warming
    from daemon.models.musicgen.longform import Window

    pad, shift, context = 2048, 10, 8
    warming = Warming(NextWindow(Window(1, context, 20, 10), shift, None), None, ExitStack(), delays(4, 1), pad,  # type: ignore[arg-type]
                      pending=[torch.full((1, 4), pad)], columns=columns)
    fed_at = []
    for index in range(1, context + 3):  # columns past the context are not the next window's
        due = warming.due()
        if due:
            fed_at.append((warming.slot, len(due)))
            warming.fed_queued(len(due))
        warming.offer(index + shift, torch.full((1, 4), index))
    if warming.due():
        fed_at.append((warming.slot, len(warming.due())))
        warming.fed_queued(len(warming.due()))
    expected = [(start, min(columns, context - start)) for start in range(0, context, columns)]
    assert fed_at == expected and warming.slot == context and not warming.pending and not warming.broken
    assert [int(c[0, 0]) for c in warming.fed] == [pad] + list(range(1, context))  # codebook 0: no ramp

    late = Warming(NextWindow(Window(1, context, 20, 10), shift, None), None, ExitStack(), delays(4, 1), pad,  # type: ignore[arg-type]
                   pending=[torch.full((1, 4), pad)], columns=2)
    late.offer(1 + shift, torch.ones((1, 4), dtype=torch.long))
    late.offer(2 + shift, torch.ones((1, 4), dtype=torch.long))  # two queued and a third: never fed as made
    assert late.broken and late.pending == [] and late.due() == []


def _context_slots(cache, frames: int) -> list[torch.Tensor]:
    """Copies of the slots and scales a window's first `frames` positions wrote in `cache`, every layer
    (the rest may be unwritten memory): the int8 head's and the 4-bit positions' past it (+kv4), or
    int8's; as bytes (+kv4's float16 scales hold the head's float32 ones: no NaN compares unequal)."""
    rows = cache.slot_rows(frames)
    return [tensor[:, :, :rows].contiguous().view(torch.uint8)
            for tensor in (*cache.keys, *cache.values, *cache.key_scales, *cache.value_scales)]


def _assert_same_seams(expected: list[list[torch.Tensor]], got: list[list[torch.Tensor]]) -> None:
    """Two jobs' seams (`_context_slots` of each handed cache) hold the same bytes, tensor by tensor."""
    for seam, (want, have) in enumerate(zip(expected, got, strict=True)):
        for index, (a, b) in enumerate(zip(want, have, strict=True)):
            assert torch.equal(a, b), f"seam {seam}, tensor {index}"


@pytest.mark.parametrize("columns", [3, 8, 32])
@pytest.mark.parametrize("batched", [False, True])
def test_riding_k_columns_a_step_leaves_the_next_windows_the_cache_and_codes_of_one_a_step(load_preset, monkeypatch,
                                                                                          columns, batched):
    """`RIDE_COLUMNS` k: the next window's context rides k columns every k steps (each column a window
    of its own over the same cache, decoder_step.c's row groups), the last few flushed with the
    context's last column (20 columns: 3 and 8 leave 2 and 4; 32 is all of them at once). Its cache
    holds the bits one column a step leaves, and the job's codes are the same, sampled."""
    from daemon.models.musicgen import handoff
    from daemon.models.musicgen.handoff import Warming

    monkeypatch.setattr(kv_cache, "INT8_HEAD_POSITIONS", 5)  # +kv4: the context's later slots in 4 bits
    model = _model(load_preset, "int8a8+kv4")
    prefills = _count_prefills(model, monkeypatch)
    handed: list[list[torch.Tensor]] = []
    ready_for = Warming.ready_for

    def recorded(self, inputs, cond):
        handed.append(_context_slots(self.cache, self.context_frames))
        return ready_for(self, inputs, cond)

    monkeypatch.setattr(Warming, "ready_for", recorded)
    decoder, caches_seen = model.engine.decoder, []
    row_batch = decoder.native._batch  # the windows of each native step (whichever call steps them)

    def spied(caches):
        caches_seen.append(len(caches))
        return row_batch(caches)

    monkeypatch.setattr(decoder.native, "_batch", spied)
    runs = {}
    for k in (1, columns):
        monkeypatch.setattr(handoff, "RIDE_COLUMNS", k)
        handed.clear()
        caches_seen.clear()
        audio = np.concatenate([c.audio for c in model.stream("a long drone", SAMPLED, batched=batched, label="job")],
                               axis=1)
        runs[k] = (audio, list(handed), max(caches_seen))
    assert prefills == [] and len(runs[columns][1]) == len(runs[1][1]) == 3  # three seams, each handed off
    assert runs[1][2] == 2 and runs[columns][2] == 1 + min(columns, 20)  # the playing window and k columns' windows
    _assert_same_seams(runs[1][1], runs[columns][1])
    np.testing.assert_array_equal(runs[columns][0], runs[1][0])
    _assert_all_freed(model)


def test_a_context_rides_several_columns_a_step_where_the_tile_unit_takes_their_products(load_preset, monkeypatch):
    """`RIDE_COLUMNS` unset: the int8 engines' next window rides `TILE_RIDE_COLUMNS` columns a step where
    that many rows' products go through the tile unit (`int8_matvec.tile_rows`, AMX), else one; int4's
    products never do (its own kernel), and a number set is that number for every engine. A job's
    windows ride as the choice says (its steps' windows: the playing one and the columns')."""
    from daemon.models.musicgen import handoff
    from daemon.native import int8_matvec

    monkeypatch.setattr(handoff, "RIDE_COLUMNS", None)
    model = _model(load_preset, "int8a8+kv4")
    int8, int4 = model.engine.decoder, _model(load_preset, "int4").engine.decoder
    together = handoff.TILE_RIDE_COLUMNS
    for tiles, expected in ((0, 1), (6, together), (2 + 2 * together, together), (3 + 2 * together, 1)):
        monkeypatch.setattr(int8_matvec, "tile_rows", lambda tiles=tiles: tiles)
        assert handoff.ride_columns(int8) == expected, tiles
        assert handoff.ride_columns(int4) == 1
    monkeypatch.setattr(handoff, "RIDE_COLUMNS", 3)
    assert handoff.ride_columns(int4) == handoff.ride_columns(int8) == 3

    monkeypatch.setattr(handoff, "RIDE_COLUMNS", None)
    row_batch, windows_seen = int8.native._batch, []

    def spied(caches):
        windows_seen.append(len(caches))
        return row_batch(caches)

    monkeypatch.setattr(int8.native, "_batch", spied)
    for tiles, expected in ((0, 1), (6, together)):
        monkeypatch.setattr(int8_matvec, "tile_rows", lambda tiles=tiles: tiles)
        windows_seen.clear()
        for _ in model.stream("a long drone", SAMPLED, label="job"):
            pass
        assert max(windows_seen) == 1 + expected, tiles
    _assert_all_freed(model)


@pytest.mark.parametrize("batched", [False, True])
def test_a_context_riding_in_narrowed_stages_hands_the_window_the_cache_and_codes_of_the_window_sized_one(
        load_preset, monkeypatch, batched):
    """`RIDE_STAGE_POSITIONS`: the next window's context rides views of its cache's first bytes laid out
    for 7, 14, then 21 positions (each (row, head)'s slots back to back: kv_cache.narrowed), moved on as
    it fills and to the window's layout at the seam. The window takes a cache holding the bits riding
    the window-sized cache leaves, every slot where it was (a slot moved wrong changes them), and the
    job's sampled codes are the same."""
    from daemon.models.musicgen import handoff
    from daemon.models.musicgen.handoff import Warming

    monkeypatch.setattr(kv_cache, "INT8_HEAD_POSITIONS", 5)  # +kv4: the context's later slots in 4 bits
    model = _model(load_preset, "int8a8+kv4")
    prefills = _count_prefills(model, monkeypatch)
    handed: list[list[torch.Tensor]] = []
    narrow: list[int] = []
    take = Warming.handed
    move = handoff.move_slots

    def recorded(self):
        cache = take(self)
        handed.append(_context_slots(cache, self.context_frames))
        return cache

    def moved(source, target, positions):
        narrow.append(source.max_positions)
        move(source, target, positions)

    monkeypatch.setattr(Warming, "handed", recorded)
    monkeypatch.setattr(handoff, "move_slots", moved)
    monkeypatch.setattr(handoff, "WINDOW_STAGE_POSITIONS", 0)  # the riding rows' stages alone (test_window_stages)
    runs = {}
    for stage in (0, 7):
        monkeypatch.setattr(handoff, "RIDE_STAGE_POSITIONS", stage)
        handed.clear()
        narrow.clear()
        audio = np.concatenate([c.audio for c in model.stream("a long drone", SAMPLED, batched=batched, label="job")],
                               axis=1)
        runs[stage] = (audio, list(handed), list(narrow))
    assert prefills == [] and len(runs[0][1]) == len(runs[7][1]) == 3  # three seams, each handed off
    assert runs[0][2] == [] and runs[7][2] == [7, 14, 21] * 3  # each seam's stages, moved on as they filled
    _assert_same_seams(runs[0][1], runs[7][1])
    np.testing.assert_array_equal(runs[7][0], runs[0][0])
    _assert_all_freed(model)
