"""The batched native step (`riffd_step_rows`): streams at different positions of different windows,
each with its own caches, share one call; each row's logits and cache writes are the same bits as
when its stream runs alone, and the ctypes mirror checks the C structs' layout at load."""

from __future__ import annotations

import ctypes
from contextlib import ExitStack

import pytest
import torch

from daemon.models.musicgen.conditioning import build_conditioning
from daemon.models.musicgen import folded_condition, kv_cache
from daemon.models.musicgen.engine import MusicgenEngine
from daemon.models.musicgen.handoff import share_condition
from daemon.models.musicgen.options import EngineOptions
from daemon.native import NativeUnavailable
from daemon.native.embed import InputEmbedder
from daemon.native.decoder_step import (Int8Struct, LayerWeightsStruct, Mirrored, NativeModel, NormStruct, RowStruct,
                                        bind_row, check_layout, functions)
from tests.musicgen.test_native import _kernel_runs_here

pytestmark = pytest.mark.skipif(_kernel_runs_here() is not None, reason=f"native int8 kernel: {_kernel_runs_here()}")

INT8 = EngineOptions(weights="int8", warmup=False)


def native_model(engine: MusicgenEngine) -> NativeModel:
    def norm(n):
        return NormStruct() if n is None else NormStruct.of(n.weight, n.bias)

    def packed(linear):
        return Int8Struct.of(None if linear is None else linear.packed)

    w = engine.decoder.weights
    layers = [LayerWeightsStruct(norm(lw.self_norm), packed(lw.qkv), packed(lw.self_out), norm(lw.cross_norm),
                                 packed(lw.cross_q), packed(lw.cross_out), norm(lw.ffn_norm), packed(lw.fc1),
                                 packed(lw.fc2)) for lw in w.layers]
    return NativeModel(layers, heads=w.heads, head_dim=w.head_dim, eps=w.final_norm.eps,
                       final_norm=norm(w.final_norm), lm_heads=packed(w.lm_heads))


def clone_cache(cache):
    copy = type(cache)([t.clone() for t in cache.keys], [t.clone() for t in cache.values], list(cache.cross_keys),
                       list(cache.cross_values), cache.cross_mask, cache.max_positions)
    copy.key_scales, copy.value_scales = [t.clone() for t in cache.key_scales], [t.clone() for t in cache.value_scales]
    return copy


def bound_rows(cache):
    return [bind_row(cache.keys, cache.values, cache.key_scales, cache.value_scales, cache.cross_keys,
                     cache.cross_values, cache.cross_mask, row, int8_positions=cache.int8_positions)
            for row in range(cache.keys[0].shape[0])]


def assert_same_cache_bits(cache, own):
    """Every key, value and scale slot of `cache` the bits of `own`'s, slots not yet written too (unzeroed:
    the same garbage)."""
    for mine, theirs in zip(cache.keys + cache.values + cache.key_scales + cache.value_scales,
                            own.keys + own.values + own.key_scales + own.value_scales, strict=True):
        assert torch.equal(mine.view(torch.uint8), theirs.view(torch.uint8))


def playing_and_next(bundle, decoder, windows: ExitStack, generator: torch.Generator, playing_slots: int,
                     next_slots: int):
    """A guided window of `playing_slots` positions prefilled with 6 random frames of "drums", and the next
    window's cache of `next_slots` sharing its condition (handoff.share_condition); `windows` closes both."""
    cond = build_conditioning(bundle, ["drums"], guidance_scale=3.0)
    playing = windows.enter_context(decoder.open_cache(2, playing_slots))
    decoder.prefill(playing, cond, torch.randint(0, bundle.pad_token_id, (1, bundle.num_codebooks, 6),
                                                 generator=generator))
    following = windows.enter_context(decoder.open_cache(2, next_slots))
    share_condition(playing, following)
    return playing, following


@pytest.mark.parametrize("preset", ["debug/musicgen", "debug/musicgen-melody"])
def test_streams_batched_give_each_streams_own_bits(load_preset, preset):
    bundle = load_preset(preset).bundle
    engine = MusicgenEngine(bundle, INT8)
    assert engine.decoder.native is not None
    model = native_model(engine)
    generator = torch.Generator().manual_seed(0)
    streams = []  # (cache, rows, position): three windows of different lengths, conditions, positions
    with torch.inference_mode(), ExitStack() as windows:
        # The two long texts' cross-attention is under decoder_step.c's CROSS_SERIAL_POSITIONS (2048 head-positions)
        # alone and past it together: the pool's cross path against the calling thread's, bit for bit.
        long_text = "a loud and very slow drum solo, " * 30
        # The last stream's prompt is the first's: both bind the same fold, whose products they go through together.
        for texts, prompt_frames, spare in ((["drums"], 3, 17), (["an upbeat jazz tune with a walking bass", "bass"], 9, 22),
                                            (["strings"], 1, 4), ([long_text], 2, 5), ([long_text + "with bells"], 4, 6),
                                            (["drums"], 5, 9)):
            cond = build_conditioning(bundle, texts, guidance_scale=3.0)
            prefix = cond.hidden_states.shape[1] if cond.prefix else 0
            inputs = torch.randint(0, bundle.pad_token_id, (len(texts), bundle.num_codebooks, prompt_frames),
                                   generator=generator)
            cache = windows.enter_context(engine.decoder.open_cache(cond.hidden_states.shape[0],
                                                                    prefix + prompt_frames + spare))
            engine.decoder.prefill(cache, cond, inputs)
            streams.append((cache, 2 * len(texts), prefix + prompt_frames))
        if streams[3][0].cross_keys:  # (melody checkpoints have no cross-attention)
            heads = engine.decoder.weights.heads
            long_positions = [heads * cache.cross_keys[0].shape[2] for cache, _, _ in streams[3:5]]
            assert all(p <= 2048 for p in long_positions) and sum(long_positions) > 2048, long_positions
        alone = [clone_cache(cache) for cache, _, _ in streams]
        # bound as the engine binds them: the short conditions folded (folded_condition.py), the long ones not
        rows = [row for cache, _, _ in streams for row in engine.decoder.native.rows(cache)]
        if streams[0][0].cross_keys:
            folded = [bool(row.caches[0].folded_scores.packed) for row in rows]
            assert folded[:2] == [True, False] and not any(folded[2:6]) and folded[6:8] == [True, False], folded
            assert folded[8:] == [False] * 4 + [True, False], folded
            assert rows[12].caches[0].folded_scores.packed == rows[0].caches[0].folded_scores.packed
        batch = model.batch(rows)
        positions = [position for _, rows, position in streams]
        for step in range(4):
            tokens = [torch.randint(0, bundle.pad_token_id, (rows, bundle.num_codebooks, 1), generator=generator)
                      for _, rows, _ in streams]
            xs = [engine.decoder._embed(t)[:, 0] + engine.decoder.weights.positions[p] for t, p in zip(tokens, positions)]
            batch.set_positions([p for (_, rows, _), p in zip(streams, positions) for _ in range(rows)])
            together = model.step(torch.cat(xs), batch)
            start = 0
            for (_, rows, _), own, x, position in zip(streams, alone, xs, positions):
                by_itself = engine.decoder.native(x[:, None], own, position)  # the single-window entry, on its own copy
                assert torch.equal(together[start:start + rows], by_itself), f"step {step}"
                start += rows
            positions = [p + 1 for p in positions]
        for (cache, _, _), own in zip(streams, alone):
            assert_same_cache_bits(cache, own)


@pytest.mark.parametrize("mode", ["int8", "int8a8+kv4"])
def test_keys_only_rows_leave_the_caches_and_logits_of_the_step_that_finishes_every_row(load_preset, monkeypatch, mode):
    """A next window riding a step (`logit_windows`, handoff.py) stops in the last layer once its keys and
    values are stored (no attention, out-projection, cross-attention, MLP, final norm or lm heads):
    both windows' every cache slot and the playing window's logits are the bits of the step that takes
    every row to its logits, over steps into +kv4's 4-bit slots. Work the riding rows' caches need
    (any earlier layer's, the last layer's key and value) skipped would show here."""
    monkeypatch.setattr(kv_cache, "INT8_HEAD_POSITIONS", 3)  # +kv4: most of both windows' slots in 4 bits
    bundle = load_preset("debug/musicgen").bundle
    decoder = MusicgenEngine(bundle, EngineOptions.parse(mode + "+nowarmup")).decoder
    assert decoder.native is not None
    generator = torch.Generator().manual_seed(5)
    with torch.inference_mode(), ExitStack() as windows:
        playing, following = playing_and_next(bundle, decoder, windows, generator, 20, 12)
        for scales in following.key_scales + following.value_scales:
            scales.zero_()  # unwritten: a stored vector's scale is > 0
        finished = [clone_cache(playing), clone_cache(following)]
        for step in range(9):
            columns = [torch.randint(0, bundle.pad_token_id + 1, (1, bundle.num_codebooks), generator=generator)
                       for _ in range(2)]
            positions = [6 + step, step]
            riding = decoder.step_streams([playing, following], columns, positions, logit_windows=1)
            every_row = decoder.step_streams(finished, columns, positions)
            assert len(riding) == 1 and torch.equal(riding[0], every_row[0]), f"step {step}"
        for cache, own in zip((playing, following), finished):
            assert_same_cache_bits(cache, own)
        # the riding rows' last layer stored every step's key (9 positions: the int8 head's float32 scales
        # two entries each, then float16)
        assert kv_cache.scale_values(following.key_scales[-1], following.int8_positions)[:, :, :9].all()
        with pytest.raises(ValueError, match="logits of 0 of 2"):
            decoder.step_streams([playing, following], columns, [15, 9], logit_windows=0)


def test_batched_step_checks_what_the_c_side_trusts(load_preset):
    bundle = load_preset("debug/musicgen").bundle
    engine = MusicgenEngine(bundle, INT8)
    model = native_model(engine)
    cond = build_conditioning(bundle, ["drums"], guidance_scale=3.0)
    hidden = engine.decoder.weights.hidden
    with torch.inference_mode(), engine.decoder.open_cache(2, 8) as cache:
        engine.decoder.prefill(cache, cond, torch.full((1, bundle.num_codebooks, 1), bundle.pad_token_id))
        batch = model.batch(bound_rows(cache))
        with pytest.raises(ValueError, match="position 8 outside"):
            batch.set_positions([1, 8])
        with pytest.raises(ValueError, match="rows need"):
            batch.set_positions([1])
        batch.set_positions([1, 2])
        with pytest.raises(ValueError, match="rows need"):
            model.step(torch.zeros(3, hidden), batch)
        assert model.step(torch.zeros(2, hidden), batch).shape == (2, model.vocab)
        melody = native_model(MusicgenEngine(load_preset("debug/musicgen-melody").bundle, INT8))
        with pytest.raises(ValueError, match="do not match"):
            melody.batch(bound_rows(cache))  # cross-attention caches for a model without it
        with pytest.raises(ValueError, match="row 2"):
            bind_row(cache.keys, cache.values, cache.key_scales, cache.value_scales, cache.cross_keys,
                     cache.cross_values, cache.cross_mask, 2)
        with pytest.raises(ValueError, match="int8"):
            bind_row(cache.values[:1] * 0 + [torch.zeros(2, 4, 8, 16)], cache.values[:1], cache.key_scales[:1],
                     cache.value_scales[:1], [], [], None, 0)


def test_the_ctypes_mirror_is_checked_against_the_c_layout():
    loaded = functions()
    check_layout(loaded)  # the real mirror passes

    class Shorter(Mirrored):
        _c_name = "riffd_row"
        _fields_ = [f for f in RowStruct._fields_ if f[0] != "cross_len"]

    class Swapped(Mirrored):
        _c_name = "riffd_row_cache"
        _fields_ = [("values", ctypes.c_void_p), ("keys", ctypes.c_void_p), ("key_scales", ctypes.c_void_p),
                    ("value_scales", ctypes.c_void_p), ("cross_keys", ctypes.c_void_p), ("cross_values", ctypes.c_void_p),
                    ("folded_scores", Int8Struct), ("folded_mix", Int8Struct)]

    with pytest.raises(NativeUnavailable, match="riffd_row is 56 bytes in C, 48"):
        check_layout(loaded, [Shorter])
    with pytest.raises(NativeUnavailable, match="riffd_row_cache.values is at byte 8 in C, 0"):
        check_layout(loaded, [Swapped])


@pytest.mark.parametrize("guidance_scale", [3.0, 1.0])
def test_the_decoders_native_inputs_and_steps_are_the_reference_glues_bits(load_preset, guidance_scale):
    """`step_streams`' native glue (one gather from the flattened tables, a guided window's null rows
    copied, the windows' row batch kept between steps, alone and together) against the plain one it replaced: each window's
    `_embed(_tokens(...)) + positions[p]` through `NativeStep.step_streams` on a copy of its cache."""
    bundle = load_preset("debug/musicgen").bundle
    engine = MusicgenEngine(bundle, INT8)
    decoder = engine.decoder
    generator = torch.Generator().manual_seed(1)
    with torch.inference_mode(), ExitStack() as windows:
        streams = []
        for texts, frames in ((["drums", "an upbeat jazz tune with a walking bass"], 5), (["strings"], 2)):
            cond = build_conditioning(bundle, texts, guidance_scale=guidance_scale)
            cache = windows.enter_context(decoder.open_cache(cond.hidden_states.shape[0], frames + 12))
            inputs = torch.randint(0, bundle.pad_token_id, (len(texts), bundle.num_codebooks, frames), generator=generator)
            decoder.prefill(cache, cond, inputs)
            streams.append((cache, clone_cache(cache), frames))
        kept = []
        for step in range(3):
            columns = [torch.randint(0, bundle.pad_token_id + 1, (cache.keys[0].shape[0] // (2 if guidance_scale != 1 else 1),
                                                                 bundle.num_codebooks), generator=generator)
                       for cache, _, _ in streams]
            positions = [frames + step for _, _, frames in streams]
            caches = [cache for cache, _, _ in streams]
            hidden = decoder._native_inputs(caches, columns, positions)
            reference = [decoder._embed(decoder._tokens(cache, column)[..., None])[:, 0] + decoder.weights.positions[p]
                         for cache, column, p in zip(caches, columns, positions)]
            assert torch.equal(hidden, torch.cat(reference))
            together = decoder.step_streams(caches, columns, positions)
            kept.append(caches[0].bindings["native_together"][2])  # the windows' row batch, made at the first step
            assert kept[-1] is kept[0]
            for (_, own, _), x, position, got in zip(streams, reference, positions, together):
                want = decoder.native.step_streams([x[:, None]], [own], [position])[0]
                assert torch.equal(got, want.view(got.shape)), f"step {step}"
        (cache, own, frames), rows = streams[0], streams[0][0].keys[0].shape[0]
        for position in range(frames + 3, frames + 6):  # alone: its row batch made once, then kept
            column = torch.randint(0, bundle.pad_token_id, (rows // (2 if guidance_scale != 1 else 1),
                                                            bundle.num_codebooks), generator=generator)
            x = decoder._embed(decoder._tokens(cache, column)[..., None])[:, 0] + decoder.weights.positions[position]
            want = decoder.native.step_streams([x[:, None]], [own], [position])[0]
            assert torch.equal(decoder.step(cache, column, position), want.view(rows, -1, decoder.vocab))
        assert "native_batch" in cache.bindings
        assert "native_together" not in cache.bindings  # alone, it holds the other window's rows no more


def test_native_inputs_are_pytorchs_sums_and_refuse_codes_outside_the_tables():
    """embed.c's rows against `tables[k, codes].sum(1) + positions[p]` in PyTorch, to the bit: 8 codebooks
    (stereo) of magnitudes 1e-4..1e4 (where another order of the additions rounds otherwise), strided codes,
    a guided window's null rows copied; a code or position outside the tables is an error, nothing written."""
    generator = torch.Generator().manual_seed(3)
    books, codes_per_book, hidden = 8, 33, 64
    tables = torch.randn(books, codes_per_book, hidden, generator=generator) * torch.logspace(-4, 4, books)[:, None, None]
    positions = torch.randn(10, hidden, generator=generator)
    embedder = InputEmbedder(tables, positions)
    codes = torch.randint(0, codes_per_book, (3, books, 2), generator=generator)[..., 1]  # not contiguous
    want = tables[torch.arange(books)[None, :], codes].sum(dim=1) + positions[7]
    assert not torch.equal(want, tables[torch.arange(books)[None, :], codes].flip(1).sum(dim=1) + positions[7])
    out = torch.empty(6, hidden)
    embedder.into(out, codes, 7)
    assert torch.equal(out[:3], want) and torch.equal(out[3:], want)
    out = torch.zeros(3, hidden)
    with pytest.raises(IndexError):
        embedder.into(out, torch.where(codes == codes[1, 2], codes_per_book, codes), 7)
    with pytest.raises(ValueError):
        embedder.into(out, codes, 10)
    assert not out.any()


@pytest.mark.parametrize("mode", ["int8", "int8a8+kv4"])
@pytest.mark.parametrize("keys_only", [True, False])
@pytest.mark.parametrize("columns", [4, 8])
def test_a_windows_columns_in_one_step_leave_the_bits_of_one_column_a_step(load_preset, monkeypatch, mode, keys_only,
                                                                           columns):
    """A next window's k context columns riding one step (handoff.RIDE_COLUMNS: its cache k times, each
    at its own slot; decoder_step.c attends a head's k positions in one task, every store first) write
    the slots, and give the logits, of one column a step: the playing window's, and with logits for
    every row (`keys_only` False: the last layer attends too) each column's own. A column attending
    before the one below it stored its key would read an unwritten slot. At 8 columns the step has 18
    rows, more than a fused product region takes (16), while the keys-only step's last layer carries 2
    into one (with the condition unfolded, the cross query's product fused with its attention, where a
    head's rows are whole blocks of the kernel's: the 256-bit branches here). That path wrote them into
    a buffer sized for the step's rows, 1 byte past 16: musicgen-small's 4 KB crashed the process
    (`bench.ride_columns --columns 8`); the debug preset's 136 bytes passed here unnoticed."""
    monkeypatch.setattr(kv_cache, "INT8_HEAD_POSITIONS", 3)  # +kv4: the columns cross into 4-bit slots
    if columns > 4:
        monkeypatch.setattr(folded_condition, "FOLD_CONDITION", False)
    bundle = load_preset("debug/musicgen").bundle
    decoder = MusicgenEngine(bundle, EngineOptions.parse(mode + "+nowarmup")).decoder
    assert decoder.native is not None
    generator = torch.Generator().manual_seed(6)
    with torch.inference_mode(), ExitStack() as windows:
        playing, following = playing_and_next(bundle, decoder, windows, generator, 20, 3 * columns)
        one_a_step = [clone_cache(playing), clone_cache(following)]
        logit_windows = 1 if keys_only else None
        for step in range(3):
            played = torch.randint(0, bundle.pad_token_id + 1, (1, bundle.num_codebooks), generator=generator)
            context = [torch.randint(0, bundle.pad_token_id + 1, (1, bundle.num_codebooks), generator=generator)
                       for _ in range(columns)]
            slots = [step * columns + i for i in range(columns)]
            together = decoder.step_streams([playing] + [following] * columns, [played] + context, [6 + step] + slots,
                                            logit_windows=logit_windows)
            one = decoder.step_streams(one_a_step, [played, context[0]], [6 + step, slots[0]],
                                       logit_windows=logit_windows)
            alone = [decoder.step_streams([one_a_step[1]], [column], [slot])[0]
                     for column, slot in zip(context[1:], slots[1:])]
            assert torch.equal(together[0], one[0]), f"step {step}"
            if not keys_only:
                for i, mine in enumerate(together[1:]):
                    assert torch.equal(mine, (one[1:] + alone)[i]), f"step {step}, column {i}"
        for cache, own in zip((playing, following), one_a_step):
            assert_same_cache_bits(cache, own)
        with pytest.raises(ValueError, match="positions of their own"):
            decoder.step_streams([playing, following, following], [played, context[0], context[1]], [10, 3, 3])


@pytest.mark.parametrize("mode", ["int8", "int8a8+kv4"])
def test_the_qkv_product_fused_with_self_attention_gives_the_separate_regions_bits(load_preset, monkeypatch, mode):
    """decoder_step.c's self_fused (a head's qkv outputs and its attention in one pool item) against the
    qkv product's region and then the attention's (riffd_fuse_self_cost: every step fused, then none):
    the same logits and cache slots, a stream alone and with a next window's keys-only rows riding.
    The build picks one per CPU family, so the other would go untested on that CPU. A step fuses only
    where a head's outputs are whole blocks of the int8 kernel (the debug preset's head_dim 16: the
    256-bit branches' 8 and 16 rows, which every x86 machine runs in the branch tests)."""
    monkeypatch.setattr(kv_cache, "INT8_HEAD_POSITIONS", 3)  # +kv4: steps into 4-bit slots
    bundle = load_preset("debug/musicgen").bundle
    decoder = MusicgenEngine(bundle, EngineOptions.parse(mode + "+nowarmup")).decoder
    assert decoder.native is not None
    library = functions()
    generator = torch.Generator().manual_seed(7)
    built = library.riffd_fuse_self_cost(-1)  # (-1 asks, changes nothing)
    try:
        with torch.inference_mode(), ExitStack() as windows:
            fused, riding = playing_and_next(bundle, decoder, windows, generator, 24, 12)
            separate = [clone_cache(fused), clone_cache(riding)]
            for step in range(10):
                columns = [torch.randint(0, bundle.pad_token_id + 1, (1, bundle.num_codebooks), generator=generator)
                           for _ in range(2)]
                rides = step >= 4  # the first steps alone, the rest with the riding rows
                caches, positions = ([fused, riding], [6 + step, step - 4]) if rides else ([fused], [6 + step])
                logit_windows = 1 if rides else None
                library.riffd_fuse_self_cost(1 << 40)
                one = decoder.step_streams(caches, columns[:len(caches)], positions, logit_windows=logit_windows)
                library.riffd_fuse_self_cost(0)
                other = decoder.step_streams(separate[:len(caches)], columns[:len(caches)], positions,
                                             logit_windows=logit_windows)
                assert torch.equal(one[0], other[0]), f"step {step}"
            for cache, own in zip((fused, riding), separate):
                assert_same_cache_bits(cache, own)
    finally:
        library.riffd_fuse_self_cost(built)


class _CountedScratch:
    """The kernels' functions with `riffd_step_scratch_floats`' calls counted."""

    def __init__(self, functions) -> None:
        self._functions, self.asked = functions, 0

    def __getattr__(self, name):
        return getattr(self._functions, name)

    def riffd_step_scratch_floats(self, *args):
        self.asked += 1
        return self._functions.riffd_step_scratch_floats(*args)


def test_a_batch_asks_its_scratch_size_once_and_steps_as_a_fresh_batch_does(load_preset):
    """The scratch a step needs depends on the rows' windows, not their positions: a `RowBatch` asks it
    of the model once (a ctypes call a step saved), another model asks again, and each step's logits
    are a fresh batch's bits at the same positions."""
    bundle = load_preset("debug/musicgen").bundle
    engine = MusicgenEngine(bundle, INT8)
    model, other = native_model(engine), native_model(engine)
    counted, other_counted = _CountedScratch(model._functions), _CountedScratch(other._functions)
    model._functions, other._functions = counted, other_counted
    cond = build_conditioning(bundle, ["drums"], guidance_scale=3.0)
    hidden = engine.decoder.weights.hidden
    with torch.inference_mode(), engine.decoder.open_cache(2, 8) as cache:
        engine.decoder.prefill(cache, cond, torch.full((1, bundle.num_codebooks, 1), bundle.pad_token_id))
        kept = model.batch(bound_rows(cache))
        inputs = torch.randn((3, 2, hidden), generator=torch.Generator().manual_seed(2))
        for step, x in enumerate(inputs, start=1):
            for_fresh = clone_cache(cache)
            kept.set_positions([step, step])
            logits = model.step(x.clone(), kept)
            fresh = model.batch(bound_rows(for_fresh))
            fresh.set_positions([step, step])
            assert torch.equal(logits, model.step(x.clone(), fresh)), step
        assert counted.asked == 1 + 3  # the kept batch once, each fresh batch once
        kept.set_positions([4, 4])
        other.step(inputs[0].clone(), kept)
        assert other_counted.asked == 1 and kept.scratch_need is not None and kept.scratch_need[0] is other
