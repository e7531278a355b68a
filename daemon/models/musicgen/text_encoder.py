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


def int8_copy(encoder: torch.nn.Module) -> torch.nn.Module:
    """`encoder` with each bias-free linear layer the kernel takes replaced by `Int8Projection`; the
    rest (embeddings, norms, the attention's position bias) shares the original's tensors, uncopied."""
    memo: dict[int, object] = {id(tensor): tensor for tensor in [*encoder.parameters(), *encoder.buffers()]}
    for module in encoder.modules():
        if isinstance(module, torch.nn.Linear) and module.bias is None:
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
