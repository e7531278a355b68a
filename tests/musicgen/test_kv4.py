"""The 4-bit self-attention cache (`+kv4`): the packed layout, the native store against the Python
one bit for bit, the native attention over 4-bit slots against float64 math, and the native step
against the Python step reading the same layout.

Where the 4-bit slots score through the integer product (attention.c: the query rounded to bytes
per head, head sizes whose slot bytes fill the branch's vectors), float64 math meets them with that
rounded query (`_late_query`), and the softmax still within float32 rounding of it."""

from __future__ import annotations

import ctypes
import platform

import pytest
import torch

from daemon.models.musicgen import kv_cache
from daemon.models.musicgen.kv_cache import (
    FLOAT16_LARGEST, INT4_LEVELS, INT8_LEVELS, PACKED4, SCALES4, KVCache, quantize_vectors, quantize_vectors4,
    scale_values, unpack4,
)
from daemon.models.musicgen.options import EngineOptions
from daemon.native import _cpu_flags
from daemon.native.decoder_step import functions
from protocol.errors import InvalidArgument
from tests.musicgen.test_native import _kernel_runs_here, assert_native_step_equals_python

_p, _i64 = ctypes.c_void_p, ctypes.c_int64
native = pytest.mark.skipif(_kernel_runs_here() is not None, reason=f"native int8 kernel: {_kernel_runs_here()}")


def _library() -> ctypes.CDLL:
    loaded = functions()
    loaded.riffd_store_int4.argtypes = [_p, _p, _p, _i64]
    loaded.riffd_attend_int4.argtypes = [_p, _p, _p, _p, _p, _i64, _i64, _p, _p]
    loaded.riffd_attend_kv4.argtypes = [_p, _p, _p, _p, _p, _i64, _i64, _i64, _p, _p]
    loaded.riffd_attend_int8.argtypes = [_p, _p, _p, _p, _p, _i64, _i64, _p, _p]
    loaded.riffd_attention_scratch_floats.argtypes = [_i64, _i64]
    loaded.riffd_attention_scratch_floats.restype = _i64
    loaded.riffd_attend_int4_integer.argtypes = [_i64]
    loaded.riffd_attend_int4_words.argtypes = [_i64]
    return loaded


def _late_query(loaded: ctypes.CDLL, q: torch.Tensor) -> torch.Tensor:
    """The query the 4-bit slots meet: q itself, or where the kernel scores them through the integer
    product, round(q * (127 / max|q|)) in float32 (half to even) times max|q| / 127."""
    if not loaded.riffd_attend_int4_integer(q.shape[0]):
        return q.double()
    largest = q.abs().max()
    return torch.round(q * (torch.tensor(127.0) / largest)).double() * float(largest / 127.0)


#: float16's rounding: half a unit in the last place, 2^-11 of a value (2^-25 below its normal range).
HALF_ROUNDING, HALF_SUBNORMAL_ROUNDING = 2.0 ** -11, 2.0 ** -25


def _scale_rounding(scale: torch.Tensor) -> torch.Tensor:
    """The most float16 scales are off the float32 `scale` they round."""
    return torch.maximum(scale.double() * HALF_ROUNDING, torch.tensor(HALF_SUBNORMAL_ROUNDING, dtype=torch.float64))


def _vectors(count: int, head_dim: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(count, head_dim, generator=generator) * torch.logspace(-4, 3, count)[:, None]
    x[0] = 0.0  # all zero: scale 0, codes 0
    x[1, :] = 3.5 / 7  # every value on a rounding tie once scaled (x * 7 / max|x| = 3.5): half to even
    x[1, 0] = 1.0
    x[2, : head_dim // 2] = -x[2, head_dim // 2:]  # the two nibbles of each byte opposite
    return x


def test_the_packed_layout_round_trips_within_half_a_step():
    x = _vectors(40, 64, 0)
    packed, scale = quantize_vectors4(x)
    assert packed.dtype == PACKED4 and packed.shape == (40, 32) and scale.shape == (40,) and scale.dtype == SCALES4
    codes = unpack4(packed)
    assert int(codes.abs().max()) == INT4_LEVELS and int(codes.min()) >= -7
    # byte i: value i low, value i + 32 high, two's complement
    assert torch.equal(packed[:, 5].to(torch.int16), (codes[:, 5].to(torch.int16) & 15) | ((codes[:, 37].to(torch.int16) & 15) << 4))
    step = x.abs().amax(dim=-1, keepdim=True) / INT4_LEVELS
    # half a step, and the float16 scale's rounding times the code
    assert bool(((scale.double() - step[:, 0]).abs() <= _scale_rounding(step[:, 0]) * (1 + 1e-6)).all())
    bound = step.double() / 2 * (1 + 1e-6) + INT4_LEVELS * _scale_rounding(step)
    assert bool(((codes.double() * scale.double()[:, None] - x).abs() <= bound).all())
    assert torch.count_nonzero(codes[0]) == 0 and float(scale[0]) == 0.0
    assert codes[1, 1:].eq(4).all()  # 3.5 rounds to 4 (even)


def test_a_4bit_cache_writes_reads_and_counts_its_bytes(monkeypatch):
    monkeypatch.setattr(kv_cache, "INT8_HEAD_POSITIONS", 3)
    cache = KVCache.allocate(layers=2, batch=2, heads=3, head_dim=16, max_positions=8, dtype=PACKED4,
                             device=torch.device("cpu"))
    # an int8 head of 3 positions (2 rows of 8 bytes each), then 5 4-bit positions
    assert cache.packed4 and cache.quantized and cache.keys[0].shape == (2, 3, 11, 8) and cache.int8_positions == 3
    assert [cache.slot_rows(n) for n in (0, 2, 3, 8)] == [0, 4, 6, 11]
    keys = torch.randn(2, 3, 4, 16)
    cache.write(1, torch.tensor([0, 2, 3, 6]), keys, -keys)  # one prefill: two int8 positions, two 4-bit
    read_keys, read_values = cache.read(1, 7, torch.float32)
    assert read_keys.shape == (2, 3, 7, 16)
    largest = keys.abs().amax(dim=-1, keepdim=True)
    step = torch.cat((largest[:, :, :2] / INT8_LEVELS, largest[:, :, 2:] / INT4_LEVELS), dim=2)
    # half a step (the int8 head's float32 scales), and the 4-bit vectors' float16 scales' rounding (2^-11
    # of each) times the code
    rounding = torch.cat((torch.zeros_like(largest[:, :, :2]), largest[:, :, 2:] * HALF_ROUNDING), dim=2)
    assert bool(((read_keys[:, :, [0, 2, 3, 6]] - keys).abs() <= step / 2 + rounding + 1e-7).all())
    # the scales laid out as the slots: the head's float32 two float16 entries each, then float16
    assert cache.key_scales[1].dtype == SCALES4 and cache.key_scales[1].shape == (2, 3, 11)
    head_scales = cache.key_scales[1][:, :, :6].view(torch.int16).contiguous().view(torch.float32)
    assert torch.equal(head_scales[:, :, [0, 2]], quantize_vectors(keys[:, :, :2])[1])
    assert torch.equal(cache.key_scales[1][:, :, [6, 9]], quantize_vectors4(keys[:, :, 2:])[1])
    assert torch.equal(scale_values(cache.key_scales[1], 3)[:, :, [0, 2, 3, 6]],
                       torch.cat((head_scales[:, :, [0, 2]], cache.key_scales[1][:, :, [6, 9]].float()), dim=2))
    assert torch.equal(read_values[:, :, [0, 2, 3, 6]], -read_keys[:, :, [0, 2, 3, 6]])
    # the head's slots are the int8 cache's, the rest the 4-bit codes
    codes8, _ = quantize_vectors(keys[:, :, :2])
    codes4, _ = quantize_vectors4(keys[:, :, 2:])
    assert torch.equal(cache.keys[1][:, :, [0, 1, 4, 5]].view(torch.int8).reshape(2, 3, 2, 16), codes8)
    assert torch.equal(cache.keys[1][:, :, [6, 9]], codes4)
    # codes: half a byte a value after the head, a byte in it; scales: a float16 per 4-bit vector, a float32 in it
    assert cache.nbytes == 2 * 2 * (2 * 3 * 11 * 8) + 2 * 2 * (2 * 3 * 11 * 2)
    assert cache.read(1, 2, torch.float32)[0].shape == (2, 3, 2, 16)
    with pytest.raises(ValueError, match="odd"):
        KVCache.allocate(layers=1, batch=1, heads=1, head_dim=15, max_positions=2, dtype=PACKED4,
                         device=torch.device("cpu"))


@pytest.mark.parametrize("dtype", [PACKED4, torch.int8])
def test_slots_written_in_narrowed_stages_move_to_the_window_layout_bit_for_bit(monkeypatch, dtype):
    """`KVCache.narrowed` + `move_slots` (a long job's next window while its context rides: handoff.py):
    positions written into views of the window cache's first bytes, each (row, head) `capacity` + the
    int8 head rows apart, moved stage to stage and then to the window's own layout, leave every slot
    and scale where a cache written directly holds it."""
    monkeypatch.setattr(kv_cache, "INT8_HEAD_POSITIONS", 3)
    shape = dict(layers=2, batch=2, heads=3, head_dim=16, max_positions=20, dtype=dtype, device=torch.device("cpu"))
    whole, direct = KVCache.allocate(**shape), KVCache.allocate(**shape)
    generator = torch.Generator().manual_seed(5)
    written, cache = 0, whole.narrowed(4)
    head = whole.int8_positions
    for capacity in (4, 8, 12):
        grown = whole.narrowed(capacity)
        assert grown.keys[0].data_ptr() == whole.keys[0].data_ptr() and grown.int8_positions == head
        assert grown.keys[1].stride(1) == (capacity + head) * grown.keys[1].shape[3]  # heads back to back
        kv_cache.move_slots(cache, grown, written)
        cache = grown
        for position in range(written, capacity):
            keys, values = torch.randn(2, 3, 1, 16, generator=generator), torch.randn(2, 3, 1, 16, generator=generator)
            for layer in range(2):
                for target in (cache, direct):
                    target.write_with_torch(layer, torch.tensor([position]), keys, values)
        written = capacity
    kv_cache.move_slots(cache, whole, written)
    rows = whole.slot_rows(written)
    for moved, expected in zip((*whole.keys, *whole.values, *whole.key_scales, *whole.value_scales),
                               (*direct.keys, *direct.values, *direct.key_scales, *direct.value_scales), strict=True):
        assert torch.equal(moved[:, :, :rows].contiguous().view(torch.uint8),
                           expected[:, :, :rows].contiguous().view(torch.uint8))
    with pytest.raises(ValueError):
        kv_cache.move_slots(whole, whole.narrowed(4), 8)  # 8 positions do not fit 4
    if dtype == PACKED4:
        with pytest.raises(ValueError, match="int8 head"):
            whole.narrowed(2)  # the int8 head's 3 positions (6 rows) come first in every layout


def test_kv4_is_an_engine_flag_of_the_native_formats():
    options = EngineOptions.parse("int8a8+kv4+nowarmup")
    assert options.kv4 and options.weights == "int8a8" and options.name == "int8a8+kv4"
    assert EngineOptions.parse(options.name) == EngineOptions(weights="int8a8", kv4=True)
    assert options.validate("cpu") is options
    for bad in ("float32+kv4", "bfloat16+kv4", "int8+compile+kv4"):
        with pytest.raises(InvalidArgument, match="kv4"):
            EngineOptions.parse(bad).validate("cpu")


@native
@pytest.mark.parametrize("head_dim", [16, 64])
def test_native_store_equals_the_python_store_bit_for_bit(head_dim):
    loaded = _library()
    x = _vectors(64, head_dim, head_dim)
    x[3] = x[3] / x[3].abs().max() * 1e6  # a scale past float16's range: saturated at its largest, both sides
    x[4] = x[4] / x[4].abs().max() * 3e-6  # scales below float16's normal range (2^-14): its subnormals
    x[5] = x[5] / x[5].abs().max() * 1e-8  # and below its smallest: 0
    want_codes, want_scales = quantize_vectors4(x)
    assert float(want_scales[3]) == FLOAT16_LARGEST and 0 < float(want_scales[4]) < 2 ** -14 and float(want_scales[5]) == 0
    got_codes = torch.empty(64, head_dim // 2, dtype=PACKED4)
    got_scales = torch.empty(64, dtype=SCALES4)
    for row in range(64):
        loaded.riffd_store_int4(got_codes[row].data_ptr(), got_scales[row:].data_ptr(), x[row].data_ptr(), head_dim)
    assert torch.equal(got_codes, want_codes)
    assert torch.equal(got_scales.view(torch.int16), want_scales.view(torch.int16))


@native
@pytest.mark.parametrize("head", [0, 5, 64])
@pytest.mark.parametrize("dtype", [torch.int8, PACKED4])
def test_a_prefill_stores_natively_the_bits_torch_quantises(monkeypatch, dtype, head):
    """KVCache.write's one native call a layer (kv_store) against the same write in torch ops: the
    very codes and scales, int8 and +kv4 (with its int8 head before, across and after the positions)."""
    monkeypatch.setattr(kv_cache, "INT8_HEAD_POSITIONS", head)
    caches = [KVCache.allocate(layers=1, batch=2, heads=3, head_dim=64, max_positions=40, dtype=dtype,
                               device=torch.device("cpu")) for _ in range(2)]
    generator = torch.Generator().manual_seed(head)
    keys = torch.randn(2, 3, 30, 64, generator=generator) * torch.logspace(-3, 2, 30)[:, None]
    keys[0, 0, 3] = 0.0  # all zero: scale 0
    values = torch.randn(2, 3, 30, 64, generator=generator).transpose(2, 3).contiguous().transpose(2, 3)  # strided
    positions = torch.arange(3, 33)
    bits = 4 if dtype == PACKED4 else 8
    native_calls = []
    store = kv_cache.kv_store.store
    monkeypatch.setattr(kv_cache.kv_store, "store", lambda *a, **k: native_calls.append(store(*a, **k)) or native_calls[-1])
    caches[0].write(0, positions, keys, values)
    assert native_calls == [True, True]  # keys and values, each in one native call
    caches[1].write_with_torch(0, positions, keys, values)
    for name in ("keys", "values", "key_scales", "value_scales"):  # bits (float32 halves in float16 scales)
        got, want = getattr(caches[0], name)[0], getattr(caches[1], name)[0]
        assert torch.equal(got.view(torch.uint8), want.view(torch.uint8)), name
    assert store(caches[0].keys[0], caches[0].key_scales[0], keys, positions + 10, bits=bits,
                 int8_positions=caches[0].int8_positions) is False  # past the window: not taken


def _scores(q, keys, late_q=None, early=0):
    """Attention scores in float64; positions from `early` on scored with `late_q` where given."""
    scores = (keys.double() @ q.double()) / q.shape[0] ** 0.5
    if late_q is not None:
        scores[early:] = (keys[early:].double() @ late_q) / q.shape[0] ** 0.5
    return scores


def _reference(q, keys, values, late_q=None, early=0):
    """Softmax attention in float64 over `_scores`."""
    return torch.softmax(_scores(q, keys, late_q, early), dim=0) @ values.double()


def _weights_rounding(loaded, q, keys, codes, value_scales, late_q=None, early=0) -> float:
    """The most an output moves where the kernel weighs the 4-bit slots' values with 16-bit weights
    (riffd_attend_int4_words; 0 where in float32): each weight e^(s - top) * value_scale of a 4-bit
    position is off by at most the largest of them / 65534, so output d by that times the sum of
    |code| over those positions, over the softmax's total."""
    if not loaded.riffd_attend_int4_words(q.shape[0]) or early >= len(codes):
        return 0.0
    exps = torch.exp((scores := _scores(q, keys, late_q, early)) - scores.max())
    largest = (exps[early:] * value_scales.double()[early:]).max()
    return float(largest / 65534 * codes[early:].double().abs().sum(dim=0).max() / exps.sum())


@native
def test_musicgens_head_size_scores_4bit_slots_through_the_integer_product():
    # head_dim 64 (musicgen-small's): 32 bytes a slot, whole vectors or two to a vector on every branch
    loaded = _library()
    assert loaded.riffd_attend_int4_integer(64) == 1 and loaded.riffd_attend_int4_integer(128) == 1
    assert loaded.riffd_attend_int4_integer(48) == 0  # 24 bytes a slot: the float product


@native
def test_the_16bit_weights_take_musicgens_head_size_on_x86_but_avx512_without_vbmi():
    loaded = _library()
    bits = loaded.riffd_simd_bits()
    x86 = platform.machine() in ("x86_64", "AMD64")
    taken = x86 and (bits == 256 or (bits == 512 and "avx512vbmi" in _cpu_flags().split()))
    assert loaded.riffd_attend_int4_words(64) == int(taken)
    assert loaded.riffd_attend_int4_words(16) == loaded.riffd_attend_int4_words(128) == 0


@native
@pytest.mark.parametrize("head_dim", [16, 48, 64, 128])
@pytest.mark.parametrize("length", [1, 2, 7, 16, 17, 33, 1501])
def test_4bit_attention_equals_float64_math_on_the_same_slots(head_dim, length):
    loaded = _library()
    generator = torch.Generator().manual_seed(length * 1000 + head_dim)
    keys, values = (torch.randint(-7, 8, (length, head_dim), dtype=torch.int8, generator=generator) for _ in range(2))
    key_scales = (torch.rand(length, generator=generator) * 0.3 + 1e-2).to(SCALES4)
    value_scales = (torch.rand(length, generator=generator) * 0.3 + 1e-2).to(SCALES4)
    packed_keys, packed_values = (((c[:, :head_dim // 2].to(torch.int16) & 15)
                                   | ((c[:, head_dim // 2:].to(torch.int16) & 15) << 4)).to(PACKED4)
                                  for c in (keys, values))
    assert torch.equal(unpack4(packed_keys), keys)
    q = torch.randn(head_dim, generator=generator) * 2
    scratch = torch.empty(loaded.riffd_attention_scratch_floats(length, head_dim))
    out = torch.empty(head_dim)
    loaded.riffd_attend_int4(q.data_ptr(), packed_keys.data_ptr(), key_scales.data_ptr(), packed_values.data_ptr(),
                             value_scales.data_ptr(), length, head_dim, scratch.data_ptr(), out.data_ptr())
    scaled_keys = keys.double() * key_scales.double()[:, None]
    want = _reference(q, scaled_keys, values.double() * value_scales.double()[:, None], _late_query(loaded, q))
    # float32 arithmetic throughout (exp to 2e-7): within 1e-5 of the values' largest magnitude, plus
    # what the weights' rounding to 16 bits moves, where the kernel weighs that way
    bound = 1e-5 * (values.double().abs() * value_scales.double()[:, None]).max() \
        + _weights_rounding(loaded, q, scaled_keys, values, value_scales, _late_query(loaded, q))
    assert float((out.double() - want).abs().max()) <= bound


@native
@pytest.mark.parametrize("head_dim", [16, 64])
# 9001: more than two of the 16-bit weighing's int32 blocks (attention.c's WORD_BLOCK, 4096 positions)
@pytest.mark.parametrize("length, head", [(1, 4), (7, 7), (17, 16), (33, 16), (33, 0), (1501, 64), (9001, 64), (200, 1)])
def test_kv4_attention_over_an_int8_head_and_4bit_slots_equals_float64_math(head_dim, length, head):
    """riffd_attend_kv4: the first `head` positions int8 slots, the rest 4-bit right after them, one
    softmax over both; within float32 rounding of float64 math on the same dequantised slots, and the
    very bits of the int8 attention while the window is no longer than its head."""
    loaded = _library()
    generator = torch.Generator().manual_seed(length * 1000 + head_dim + head)
    early = min(head, length)
    codes8 = [torch.randint(-127, 128, (early, head_dim), dtype=torch.int8, generator=generator) for _ in range(2)]
    codes4 = [torch.randint(-7, 8, (length - early, head_dim), dtype=torch.int8, generator=generator) for _ in range(2)]
    key_scales = torch.rand(length, generator=generator) * 0.3 + 1e-2
    value_scales = torch.rand(length, generator=generator) * 0.3 + 1e-2
    key_scales[:early] /= 18  # int8 codes are ~18x 4-bit ones: keep the two regions' vectors alike in size
    value_scales[:early] /= 18
    # the layout's: the head's float32 scales two float16 entries each (room for all `head`), then float16
    key_scales[early:], value_scales[early:] = (s[early:].to(SCALES4).float() for s in (key_scales, value_scales))
    laid_out = [torch.cat((torch.cat((s[:early], torch.zeros(head - early))).view(SCALES4), s[early:].to(SCALES4)))
                for s in (key_scales, value_scales)]
    half = head_dim // 2
    slots = []
    for c8, c4 in zip(codes8, codes4):
        packed = ((c4[:, :half].to(torch.int16) & 15) | ((c4[:, half:].to(torch.int16) & 15) << 4)).to(PACKED4)
        region = torch.zeros(head, head_dim, dtype=torch.int8)  # the head's room, used or not
        region[:early] = c8
        slots.append(torch.cat((region.view(PACKED4).flatten(), packed.flatten())))
    q = torch.randn(head_dim, generator=generator) * 2
    scratch = torch.empty(loaded.riffd_attention_scratch_floats(length, head_dim))
    out = torch.empty(head_dim)
    loaded.riffd_attend_kv4(q.data_ptr(), slots[0].data_ptr(), laid_out[0].data_ptr(), slots[1].data_ptr(),
                            laid_out[1].data_ptr(), length, head, head_dim, scratch.data_ptr(), out.data_ptr())
    keys, codes = (torch.cat((c8, c4)).double() for c8, c4 in zip(codes8, codes4))
    keys, values = keys * key_scales.double()[:, None], codes * value_scales.double()[:, None]
    want = _reference(q, keys, values, _late_query(loaded, q), early)
    bound = 1e-5 * values.abs().max() + _weights_rounding(loaded, q, keys, codes, value_scales, _late_query(loaded, q),
                                                          early)
    assert float((out.double() - want).abs().max()) <= bound
    if length <= head:
        int8_out = torch.empty(head_dim)
        loaded.riffd_attend_int8(q.data_ptr(), codes8[0].data_ptr(), key_scales.data_ptr(), codes8[1].data_ptr(),
                                 value_scales.data_ptr(), length, head_dim, scratch.data_ptr(), int8_out.data_ptr())
        assert torch.equal(out, int8_out)


@native
@pytest.mark.parametrize("mode, head", [("int8a8", 9), ("int8", 9), ("int8a8", 0)])
def test_native_kv4_step_equals_the_python_step_on_the_same_layout(load_preset, monkeypatch, mode, head):
    # an int8 head shorter than the 40 frames: both regions and the step across them are compared
    monkeypatch.setattr(kv_cache, "INT8_HEAD_POSITIONS", head)
    bundle = load_preset("debug/musicgen").bundle
    options = EngineOptions(weights=mode, warmup=False, kv4=True)
    engine = assert_native_step_equals_python(bundle, options, ["an upbeat jazz tune with a walking bass", "drums"],
                                              frames=40)
    assert engine.decoder.cache_dtype == PACKED4
    with engine.decoder.open_cache(4, 8) as cache:
        assert cache.packed4 and cache.keys[0].shape[-1] == engine.decoder.weights.head_dim // 2
        assert cache.nbytes == engine.decoder.cache_bytes(4, 8, 0)
