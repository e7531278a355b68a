"""The text encoder a request's prompt goes through: the checkpoint's T5 as it is, or a bfloat16
copy of it where that is faster and the decode is approximate anyway (`condition_precision.py`).

A fresh prompt's encoding is on the path to its first sound: on the 2-core AMD EPYC Zen 4
(AVX-512 BF16) the float32 t5-base of `random/musicgen-small` took 85 ms for a 27-token prompt
(ByT5's byte tokenizer; the real checkpoint's sentencepiece needs ~8 tokens), its bfloat16 copy
40 ms, for hidden states within 1 % of float32's (relative Frobenius error 0.0096).
"""

from __future__ import annotations

import copy
import logging

import torch

from daemon.models.musicgen.loader import MusicgenBundle

log = logging.getLogger(__name__)

#: The bound the bfloat16 encoder's hidden states keep to float32's (relative Frobenius error),
#: checked by tests/musicgen/test_text_encoder.py; measured 0.0096 on random/musicgen-small.
BF16_MAX_RELATIVE_ERROR = 0.02
class TextEncoder:
    """`(input_ids, attention_mask) -> last hidden states` `[B, S, H_text]` (float32) of the
    bundle's encoder in `dtype` (a copy when not the loaded one's)."""

    def __init__(self, bundle: MusicgenBundle, dtype: torch.dtype = torch.float32) -> None:
        encoder = bundle.model.text_encoder
        self.dtype = dtype
        loaded = next(encoder.parameters()).dtype
        if dtype != loaded:
            encoder = copy.deepcopy(encoder).to(dtype)
            log.info("%s: text encoder in %s (hidden states within %.0f %% of %s's)", bundle.model_id,
                     str(dtype).removeprefix("torch."), 100 * BF16_MAX_RELATIVE_ERROR, str(loaded).removeprefix("torch."))
        self._encoder = encoder

    @torch.inference_mode()
    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        states = self._encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return states.float()
