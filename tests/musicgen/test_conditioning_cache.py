"""A prompt asked again skips the text encoder: the same conditioning, the same music, a bounded cache."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from daemon.models.musicgen import backend as backend_module
from daemon.models.musicgen.backend import KEPT_CONDITIONINGS, MusicGen
from daemon.models.musicgen.options import EngineOptions
from protocol.params import GenerationParams


def test_a_prompt_asked_again_is_not_encoded_again(load_preset, monkeypatch):
    bundle = load_preset("debug/musicgen").bundle
    model = MusicGen(dataclasses.replace(bundle), engine=EngineOptions(warmup=False))
    encoded: list[tuple] = []
    real = backend_module.build_conditioning

    def counting(bundle, texts, **kwargs):
        encoded.append(tuple(texts))
        return real(bundle, texts, **kwargs)

    monkeypatch.setattr(backend_module, "build_conditioning", counting)
    params = GenerationParams(duration_s=0.5, seed=11)
    first = np.concatenate([c.audio for c in model.stream("warm pads", params)], axis=1)
    again = np.concatenate([c.audio for c in model.stream("warm pads", params)], axis=1)
    assert encoded == [("warm pads",)]
    np.testing.assert_array_equal(first, again)
    # What a job gets is its own copy: changing it leaves the kept one as the encoder made it.
    cond = model._text_conditioning(["warm pads"], params.guidance_scale)
    reference = real(bundle, ["warm pads"], guidance_scale=params.guidance_scale)
    cond.hidden_states.zero_()
    assert torch.equal(model._text_conditioning(["warm pads"], params.guidance_scale).hidden_states,
                       reference.hidden_states)
    # Another guidance scale is another conditioning; the least recently asked leave first.
    model._text_conditioning(["warm pads"], 1.0)
    for n in range(KEPT_CONDITIONINGS):
        model._text_conditioning([f"prompt {n}"], params.guidance_scale)
    kept = model._conditionings
    assert len(kept) == KEPT_CONDITIONINGS and (("prompt 0",), params.guidance_scale) in kept
    assert (("warm pads",), params.guidance_scale) not in kept and (("warm pads",), 1.0) not in kept
