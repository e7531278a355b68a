"""riffd's native attention for one (row, head) against float64 math on the same int8 slots: every
length around the vector width, the head sizes compiled as constants and one that is not."""

from __future__ import annotations

import ctypes

import pytest
import torch

from daemon.native.decoder_step import functions
from tests.musicgen.test_native import _kernel_runs_here

pytestmark = pytest.mark.skipif(_kernel_runs_here() is not None, reason=f"native int8 kernel: {_kernel_runs_here()}")

_p, _i64 = ctypes.c_void_p, ctypes.c_int64


def _library() -> ctypes.CDLL:
    loaded = functions()
    loaded.riffd_attend_int8.argtypes = [_p, _p, _p, _p, _p, _i64, _i64, _p, _p]
    loaded.riffd_attend_f32.argtypes = [_p, _p, _p, _p, _i64, _i64, _p, _p]
    loaded.riffd_attention_scratch_floats.argtypes = [_i64, _i64]
    loaded.riffd_attention_scratch_floats.restype = _i64
    return loaded


def _reference(q, keys, values, mask=None):
    scores = (keys.double() @ q.double()) / q.shape[0] ** 0.5
    if mask is not None:
        scores = scores + mask.double()
    return torch.softmax(scores, dim=0) @ values.double()


@pytest.mark.parametrize("head_dim", [16, 48, 64, 128])
@pytest.mark.parametrize("length", [1, 7, 8, 15, 16, 17, 33, 300, 1501])
def test_int8_attention_equals_float64_math_on_the_same_slots(head_dim, length):
    loaded = _library()
    generator = torch.Generator().manual_seed(length * 1000 + head_dim)
    keys = torch.randint(-127, 128, (length, head_dim), dtype=torch.int8, generator=generator)
    values = torch.randint(-127, 128, (length, head_dim), dtype=torch.int8, generator=generator)
    key_scales = torch.rand(length, generator=generator) * 0.05 + 1e-3
    value_scales = torch.rand(length, generator=generator) * 0.05 + 1e-3
    q = torch.randn(head_dim, generator=generator) * 2
    scratch = torch.empty(loaded.riffd_attention_scratch_floats(length, head_dim))
    out = torch.empty(head_dim)
    loaded.riffd_attend_int8(q.data_ptr(), keys.data_ptr(), key_scales.data_ptr(), values.data_ptr(),
                             value_scales.data_ptr(), length, head_dim, scratch.data_ptr(), out.data_ptr())
    want = _reference(q, keys.double() * key_scales.double()[:, None], values.double() * value_scales.double()[:, None])
    # float32 arithmetic throughout (exp to 2e-7): within 1e-5 of the values' largest magnitude
    bound = 1e-5 * (values.double().abs() * value_scales.double()[:, None]).max()
    assert float((out.double() - want).abs().max()) <= bound


@pytest.mark.parametrize("length", [1, 16, 23, 130])
def test_f32_cross_attention_with_a_mask_equals_float64_math(length):
    loaded = _library()
    generator = torch.Generator().manual_seed(length)
    head_dim = 64
    keys, values = torch.randn((2, length, head_dim), generator=generator)
    q = torch.randn(head_dim, generator=generator)
    mask = torch.zeros(length)
    mask[length // 2 + 1:] = torch.finfo(torch.float32).min  # padding after the prompt's tokens
    scratch = torch.empty(loaded.riffd_attention_scratch_floats(length, head_dim))
    out = torch.empty(head_dim)
    loaded.riffd_attend_f32(q.data_ptr(), keys.data_ptr(), values.data_ptr(), mask.data_ptr(), length, head_dim,
                            scratch.data_ptr(), out.data_ptr())
    want = _reference(q, keys, values, mask)
    assert float((out.double() - want).abs().max()) <= 1e-5 * values.abs().max()
    visible = length // 2 + 1
    assert torch.allclose(out.double(), _reference(q, keys[:visible], values[:visible]), atol=1e-5)
