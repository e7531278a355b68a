"""The codec's prepacked linear layer computes F.linear's float32 result (summed in another order),
each row independently of the rows beside it, and falls back to F.linear where oneDNN cannot run it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from daemon.models.musicgen.encodec_stages import ConvTransposeSpec, LstmSpec
from daemon.models.musicgen.packed_linear import PackedLinear

needs_onednn = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="PyTorch built without oneDNN")


def _weights(out: int, inputs: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(out + inputs)
    return torch.randn(out, inputs, generator=generator), torch.randn(out, generator=generator)


@needs_onednn
@pytest.mark.parametrize("rows", [1, 2, 7, 25, 50])
def test_packed_products_are_float32_linear_row_by_row(rows: int) -> None:
    weight, bias = _weights(512, 256)
    linear = PackedLinear(weight, bias)
    assert linear.packed is not None  # oneDNN runs here: the test below is of the packed path
    x = torch.randn(rows, 256, generator=torch.Generator().manual_seed(rows))
    y = linear(x)
    expected = F.linear(x.double(), weight.double(), bias.double())
    # float32 rounding of 256-term sums of unit-variance products (~16 in size): a few 1e-6 relative.
    assert torch.allclose(y.double(), expected, rtol=0, atol=1e-4)
    # A row's result is the same alone or among others: a stream's audio does not depend on its chunking.
    for row in (0, rows - 1):
        assert torch.equal(linear(x[row:row + 1])[0], y[row])


@needs_onednn
def test_packed_products_keep_the_leading_axes() -> None:
    weight, bias = _weights(64, 32)
    x = torch.randn(5, 2, 32)
    assert torch.allclose(PackedLinear(weight, bias)(x), F.linear(x, weight, bias), atol=1e-5)
    # time-major rows from a transposed view (ConvTranspose's layout) are made contiguous first
    y = PackedLinear(weight)(x.transpose(0, 1))
    assert torch.allclose(y, F.linear(x.transpose(0, 1), weight), atol=1e-5)


def test_weights_onednn_does_not_take_run_through_f_linear() -> None:
    weight, bias = _weights(64, 32)
    linear = PackedLinear(weight.double(), bias.double())
    assert linear.packed is None
    x = torch.randn(3, 32, dtype=torch.float64)
    assert torch.equal(linear(x), F.linear(x, weight.double(), bias.double()))


@needs_onednn
def test_the_codecs_chunk_products_are_packed() -> None:
    """The streaming codec's transposed convolutions and LSTM input products go through the packed path."""
    weight = torch.randn(32, 16, 8)  # [in, out, kernel], stride 4
    spec = ConvTransposeSpec.from_weight(weight, None, 4, 2, 2)
    assert spec.product.packed is not None and spec.product.weight is spec.matrix
    lstm = LstmSpec.from_lstm(torch.nn.LSTM(32, 32, num_layers=2))
    assert all(product.packed is not None for product in lstm.input_products)
    assert [product.weight for product in lstm.input_products] == list(lstm.weight_ih)
