"""The text encoder a request's prompt goes through: the checkpoint's T5 as it is, or a faster
copy of it where the decode is approximate anyway (`condition_precision.py`): bfloat16 where
bfloat16 matmuls are native, else its linear layers on riffd's int8 kernel.

A fresh prompt's encoding is on the path to its first sound: on the 2-core AMD EPYC Zen 4
(AVX-512 BF16) the float32 t5-base of `random/musicgen-small` took 85 ms for a 27-token prompt
(ByT5's byte tokenizer; the real checkpoint's sentencepiece needs ~8 tokens), its bfloat16 copy
40 ms, for hidden states within 1 % of float32's (relative Frobenius error 0.0096). With AVX2 caps
on the same Zen 4 (`--emulate avx2`: bfloat16 emulated) the 41-token bench prompt took 81 ms in
float32 and 36 ms with int8 linear layers, hidden states within 1.9 % (0.0191) of float32's.
"""

from __future__ import annotations

import copy
import logging

import torch

from daemon.models.musicgen.condition_precision import ConditionPrecision
from daemon.models.musicgen.loader import MusicgenBundle
from daemon.models.musicgen.speed import Int8Linear

log = logging.getLogger(__name__)

#: The bound the bfloat16 encoder's hidden states keep to float32's (relative Frobenius error),
#: checked by tests/musicgen/test_text_encoder.py; measured 0.0096 on random/musicgen-small.
BF16_MAX_RELATIVE_ERROR = 0.02
#: The same for the int8 encoder (weights rounded to 8 bits per row, activations to 16 bits):
#: measured 0.0191 on random/musicgen-small's t5-base (12 layers, the bench prompt), 0.0077 on
#: debug/musicgen's two layers. Its greedy agreement with float32 (the int8 engine's keys from it
#: against float32's from float32's): tests/musicgen/test_text_encoder.py.
INT8_MAX_RELATIVE_ERROR = 0.03
#: Each precision's bound, for the log line and the tests.
MAX_RELATIVE_ERROR: dict[str, float] = {"float32": 0.0, "bfloat16": BF16_MAX_RELATIVE_ERROR,
                                        "int8": INT8_MAX_RELATIVE_ERROR}


class Int8Projection(torch.nn.Module):
    """An `nn.Linear` without bias, as int8 weights run by riffd's kernel (float32 in and out)."""

    def __init__(self, linear: Int8Linear, shape: torch.Size) -> None:
        super().__init__()
        self.linear = linear
        # transformers' T5 reads `wo.weight.dtype` to cast its input: a weightless stand-in that says float32.
        self.weight = torch.empty(shape, device="meta")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.float())


class SharedQkv:
    """An attention layer's query, key and value projections as one int8 product: the three read the
    same states, so the query's call multiplies them by all three at once (one quantisation of the
    rows, one kernel call instead of three) and keeps the key's and value's parts for their calls.
    Each output is the bits its own projection gives (rows quantised on their own, exact integer
    sums). t5-base's 12 layers with AVX2 emulated on the 2-core Zen 4, 44 rows: 36 products 10.5 ms,
    12 fused 8.2 ms."""

    def __init__(self, fused: Int8Linear, width: int) -> None:
        self.fused, self.width = fused, width
        self.parts = [fused.row_slice(i * width, (i + 1) * width) for i in range(3)]
        # What the query's call multiplied, and by all three: one tuple, set and read in one step, so
        # that two threads encoding at once never pair one's states with the other's products.
        self._kept: tuple[torch.Tensor, torch.Tensor] | None = None

    def project(self, index: int, x: torch.Tensor) -> torch.Tensor:
        """Projection `index` (0 query, 1 key, 2 value) of `x`."""
        kept = self._kept
        if index == 0:
            products = self.fused(x.float())
            self._kept = (x, products)
        elif kept is not None and kept[0] is x:
            products = kept[1]
            if index == 2:  # the last of the three: let go of the states
                self._kept = None
        else:  # other states (not T5's self-attention as transformers calls it): that projection alone
            return self.parts[index](x.float())
        return products[..., index * self.width:(index + 1) * self.width]


class SharedQkvProjection(Int8Projection):
    """One of `SharedQkv`'s three projections as the `nn.Linear` it replaces."""

    def __init__(self, shared: SharedQkv, index: int, shape: torch.Size) -> None:
        super().__init__(shared.parts[index], shape)
        self.shared, self.index = shared, index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shared.project(self.index, x)


def _bias_free(module: object) -> bool:
    return isinstance(module, torch.nn.Linear) and module.bias is None


def int8_copy(encoder: torch.nn.Module) -> torch.nn.Module:
    """`encoder` with each bias-free linear layer the kernel takes replaced by `Int8Projection` (an
    attention's query, key and value by `SharedQkv`'s); the rest (embeddings, norms, the attention's
    position bias) shares the original's tensors, uncopied."""
    memo: dict[int, object] = {id(tensor): tensor for tensor in [*encoder.parameters(), *encoder.buffers()]}
    for module in encoder.modules():
        q, k, v = (getattr(module, name, None) for name in ("q", "k", "v"))
        if _bias_free(q) and _bias_free(k) and _bias_free(v):
            assert isinstance(q, torch.nn.Linear) and isinstance(k, torch.nn.Linear) and isinstance(v, torch.nn.Linear)
            weights = [q.weight.detach(), k.weight.detach(), v.weight.detach()]
            fused = Int8Linear(weights)
            width = weights[0].shape[0]
            if fused.packed is not None and all(w.shape[0] == width for w in weights) \
                    and width % fused.packed.packed.shape[2] == 0:
                shared = SharedQkv(fused, width)
                for index, linear in enumerate((q, k, v)):
                    memo[id(linear)] = SharedQkvProjection(shared, index, linear.weight.shape)
    for module in encoder.modules():
        if _bias_free(module) and id(module) not in memo:
            assert isinstance(module, torch.nn.Linear)
            int8 = Int8Linear([module.weight.detach()])
            if int8.packed is not None:  # else (a shape the kernel does not take) float32 stays
                memo[id(module)] = Int8Projection(int8, module.weight.shape)
    return copy.deepcopy(encoder, memo)


class TextEncoder:
    """`(input_ids, attention_mask) -> last hidden states` `[B, S, H_text]` (float32) of the
    bundle's encoder in `precision` (a copy when not float32)."""

    def __init__(self, bundle: MusicgenBundle, precision: ConditionPrecision = "float32") -> None:
        encoder = bundle.model.text_encoder
        self.precision = precision
        loaded = next(encoder.parameters()).dtype
        if precision == "bfloat16" and loaded != torch.bfloat16:
            encoder = copy.deepcopy(encoder).to(torch.bfloat16)
        elif precision == "int8":
            encoder = int8_copy(encoder)
        if encoder is not bundle.model.text_encoder:
            log.info("%s: text encoder in %s (hidden states within %.0f %% of %s's)", bundle.model_id, precision,
                     100 * MAX_RELATIVE_ERROR[precision], str(loaded).removeprefix("torch."))
        self._encoder = encoder

    @torch.inference_mode()
    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        states = self._encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return states.float()
