"""The token loop of one generation window: prefill, then one decoder step per column.

This is the plain loop over transformers' decoder with its own key/value cache; it is the
float32 reference the faster streaming engine is checked against.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from daemon.models.musicgen.conditioning import Conditioning
from daemon.models.musicgen.delay import WindowPattern
from daemon.models.musicgen.loader import MusicgenBundle
from daemon.models.musicgen.sampling import apply_guidance, sample_next
from protocol.errors import Cancelled
from protocol.params import GenerationParams


@torch.inference_mode()
def iter_columns(
    bundle: MusicgenBundle,
    cond: Conditioning,
    prompt: torch.Tensor | None,
    new_frames: int,
    params: GenerationParams,
    generator: torch.Generator | None,
    should_stop: Callable[[], bool] | None = None,
) -> Iterator[torch.Tensor]:
    """Yield each new sequence column `[B, K]` of a window, `new_frames + max delay` of them.

    `prompt` is `[B, K, P]` frame-aligned codes the window continues (or None). The columns
    before the first yielded one are `delay.initial_columns(prompt, ...)`.
    """
    batch, num_codebooks = cond.batch_size, bundle.num_codebooks
    pattern = WindowPattern.plan(prompt, batch, num_codebooks, bundle.audio_channels, new_frames, bundle.pad_token_id,
                                 bundle.device)
    inputs = pattern.inputs
    decoder = bundle.model.decoder
    cache = None
    for step in range(pattern.steps):
        ids = inputs.reshape(batch * num_codebooks, -1)
        if cond.guided:
            ids = ids.repeat(2, 1)
        # Prefix conditioning (melody) enters once, with the first step; cross-attention every step.
        states = cond.hidden_states if (step == 0 or not cond.prefix) else None
        out = decoder(input_ids=ids, encoder_hidden_states=states, encoder_attention_mask=cond.attention_mask,
                      past_key_values=cache, use_cache=True)
        cache = out.past_key_values
        logits = out.logits[:, -1, :].float()  # [B' * K, V]
        if cond.guided:
            logits = apply_guidance(logits, params.guidance_scale)
        proposed = sample_next(logits, params, generator).view(batch, num_codebooks)
        column = pattern.column(step, proposed)
        yield column
        if should_stop is not None and should_stop():
            raise Cancelled("generation cancelled")
        inputs = column[..., None]
