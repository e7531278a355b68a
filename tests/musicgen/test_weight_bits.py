"""bench/weight_bits.py's simulated weight formats: the rounding and the bytes its table reports."""

from __future__ import annotations

import pytest
import torch

from bench.weight_bits import INT8, WeightFormat, parse
from daemon.native import int4_matvec


def test_a_grouped_format_rounds_each_group_to_its_own_levels_within_half_a_step():
    weight = torch.randn(8, 128, generator=torch.Generator().manual_seed(1))
    weight[3, 70] = 40.0  # an outlier widens its own group's step only
    six = WeightFormat(6, 64)
    groups, rounded = weight.view(8, 2, 64), six.quantised(weight).view(8, 2, 64)
    step = groups.abs().amax(dim=-1, keepdim=True) / 31
    assert ((rounded - groups).abs() <= step / 2 + 1e-6).all()
    codes = rounded / step
    assert torch.allclose(codes, codes.round(), atol=1e-4) and codes.abs().max() <= 31 + 1e-4
    assert step[3, 1] > 10 * step[3, 0]  # the other group of the outlier's row keeps its fine step
    per_row = WeightFormat(6, None).quantised(weight)
    assert (per_row[3, :64] - weight[3, :64]).abs().max() > (rounded[3, 0] - groups[3, 0]).abs().max()


def test_riffds_int4_is_simulated_with_its_own_codes_and_bytes_count_codes_and_scales():
    weight = torch.randn(64, 64, generator=torch.Generator().manual_seed(2))
    q = int4_matvec.quantize(weight, 32)
    expected = (q.codes.float().view(64, 2, 32) - 8) * q.scales.float().unsqueeze(-1)
    assert torch.equal(WeightFormat(4, 32).quantised(weight), expected.view(64, 64))
    assert WeightFormat(6, 64).nbytes(8, 128) == 8 * 128 * 6 // 8 + 8 * 2 * 2  # bfloat16 a group
    assert INT8.nbytes(8, 128) == 8 * 128 + 8 * 4  # float32 a row


def test_a_format_name_says_its_bits_group_and_kinds():
    formats = parse("int6g64+fc")
    assert formats["fc1"] == formats["fc2"] == WeightFormat(6, 64)
    assert formats["self_attn.q_proj"] == formats["encoder_attn.out_proj"] == INT8
    assert set(parse("int7").values()) == {WeightFormat(7, None)}
    for bad in ("int9", "int6g64+mlp", "six"):
        with pytest.raises(SystemExit):
            parse(bad)
