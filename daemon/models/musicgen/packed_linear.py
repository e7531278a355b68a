"""A float32 linear layer whose weights are laid out once for oneDNN, for products of a few rows.

The streaming codec multiplies each chunk's few frames (1 to 25 rows) by large fixed weights:
the first transposed convolution's 32 MB, the LSTM's input weights (16 MB a layer). `F.linear`
hands them to MKL's sgemm, which re-packs the weights on every call and reaches 35-45 % of a
large product's rate at 25 rows. oneDNN's matmul on weights reordered once into its blocked
layout (the same kernel PyTorch's compiler uses for frozen CPU graphs) does 2-2.4 times better
there: 25 x 1024 by 8192 columns 5.8 -> 2.6 ms, by 4096 columns 2.5 -> 1.06 ms (2 threads of an
AMD EPYC Zen 4; the same ratios with oneDNN and MKL capped at AVX2). The result is float32's,
summed in another order (within 2e-4 of F.linear's at these sizes), and a row's result does not
depend on the rows beside it, so a stream decodes the same whatever its chunking.

Where PyTorch has no oneDNN (or the weights are not float32 on the CPU) it is `F.linear`.
"""

from __future__ import annotations

import functools
import logging

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

#: Rows the weights' layout is chosen for (oneDNN's hint; other row counts run on the same layout,
#: every row's result the same): a stream's usual chunk of frames (streaming_codec.StreamSettings).
PACKED_FOR_ROWS = 25


class PackedLinear:
    """`y = x @ weight.T + bias` for `x` `[..., in]`, the weights packed on first use."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None) -> None:
        self.weight, self.bias = weight, bias  # [out, in], [out]

    @functools.cached_property
    def packed(self) -> torch.Tensor | None:
        """The weights in oneDNN's layout, or None where this PyTorch cannot run them so."""
        weight = self.weight
        if (weight.device.type != "cpu" or weight.dtype != torch.float32 or weight.dim() != 2
                or not torch.backends.mkldnn.is_available()):
            return None
        try:
            packed = torch.ops.mkldnn._reorder_linear_weight(weight.detach().contiguous(), PACKED_FOR_ROWS)
            probe = torch.zeros((1, weight.shape[1]), dtype=torch.float32)
            torch.ops.mkldnn._linear_pointwise(probe, packed, None, "none", [], "")
        except (RuntimeError, AttributeError, NotImplementedError) as error:
            log.info("oneDNN's prepacked linear does not run here (%s): the codec uses F.linear", error)
            return None
        return packed

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        packed = self.packed
        if packed is None or x.dtype != torch.float32 or x.device.type != "cpu":
            return F.linear(x, self.weight, self.bias)
        rows = x.reshape(-1, x.shape[-1])
        if not rows.is_contiguous():
            rows = rows.contiguous()
        y = torch.ops.mkldnn._linear_pointwise(rows, packed, self.bias, "none", [], "")
        return y.view(*x.shape[:-1], y.shape[-1])
