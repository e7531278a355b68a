"""A prompt's condition in bfloat16 for approximate engines where bfloat16 is native: within its
stated bound of float32's; float32 engines keep the checkpoint's own tensors (exact parity)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from daemon.cpu import CpuInfo
from daemon.models.musicgen import condition_precision
from daemon.models.musicgen.backend import MusicGen
from daemon.models.musicgen.conditioning import build_conditioning
from daemon.models.musicgen.options import EngineOptions
from daemon.models.musicgen.text_encoder import BF16_MAX_RELATIVE_ERROR, TextEncoder
from daemon.models.musicgen.weights import decoder_weights

PROMPTS = ["80s pop track with bassy drums and synth", "a slow cello"]
CPU = torch.device("cpu")


def _relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got.float() - want).norm() / want.norm())


def _cpu_with(flags: set[str]) -> CpuInfo:
    return CpuInfo(model="test", machine="x86_64", flags=frozenset(flags | {"avx2", "fma"}), cores=2)


@pytest.mark.parametrize(("flags", "expected"), [({"avx512_bf16"}, torch.bfloat16), ({"amx_bf16"}, torch.bfloat16),
                                                 (set(), torch.float32)])
def test_only_approximate_engines_on_native_bfloat16_cpus_condition_in_bfloat16(monkeypatch, flags, expected):
    monkeypatch.setattr(condition_precision, "this_cpu", lambda: _cpu_with(flags))
    monkeypatch.setattr(condition_precision.platform, "machine", lambda: "x86_64")
    for weights in ("int8", "int4", "int8dyn", "bfloat16"):
        assert condition_precision.condition_dtype(EngineOptions(weights=weights), CPU) == expected
    for exact in (EngineOptions(), EngineOptions(draft=True), None):
        assert condition_precision.condition_dtype(exact, CPU) == torch.float32
    assert condition_precision.condition_dtype(EngineOptions(weights="int8"), torch.device("meta")) == torch.float32
    # oneDNN capped below AVX-512 BF16 (as `--emulate avx2` does) emulates bfloat16: float32 then.
    for variable in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
        monkeypatch.setenv(variable, "AVX2")
        assert condition_precision.condition_dtype(EngineOptions(weights="int8"), CPU) == torch.float32
        monkeypatch.setenv(variable, "AVX512_CORE_AMX")
        assert condition_precision.condition_dtype(EngineOptions(weights="int8"), CPU) == expected
        monkeypatch.delenv(variable)


def test_bfloat16_condition_keeps_its_bound_and_float32_keeps_the_checkpoints_tensors(load_preset, monkeypatch):
    bundle = load_preset("debug/musicgen").bundle
    exact = build_conditioning(bundle, PROMPTS, guidance_scale=3.0)
    # The encoder's hidden states (the mask, padding and the null half are the same).
    fast = build_conditioning(bundle, PROMPTS, guidance_scale=3.0, encoder=TextEncoder(bundle, torch.bfloat16))
    assert fast.hidden_states.dtype == torch.float32
    assert torch.equal(fast.attention_mask, exact.attention_mask)
    error = _relative_error(fast.hidden_states, exact.hidden_states)
    assert 0 < error <= BF16_MAX_RELATIVE_ERROR
    # The cross-attention key/value projections of an approximate engine, in bfloat16, within the same bound.
    monkeypatch.setattr(condition_precision, "fast_bfloat16", lambda device: True)
    int8 = decoder_weights(bundle.model, EngineOptions(weights="int8"))
    layers = bundle.model.decoder.model.decoder.layers
    assert all(w.cross_k.dtype == torch.bfloat16 for w in int8.layers)
    keys = torch.nn.functional.linear(exact.hidden_states.bfloat16(), int8.layers[0].cross_k)
    reference = torch.nn.functional.linear(exact.hidden_states, layers[0].encoder_attn.k_proj.weight.detach())
    assert _relative_error(keys, reference) <= BF16_MAX_RELATIVE_ERROR
    # float32 engines: the checkpoint's own tensors and encoder, so their audio is transformers'.
    float32 = decoder_weights(bundle.model, EngineOptions())
    assert all(w.cross_k.data_ptr() == layer.encoder_attn.k_proj.weight.data_ptr()
               for w, layer in zip(float32.layers, layers, strict=True))
    model = MusicGen(dataclasses.replace(bundle), engine=EngineOptions(warmup=False))
    assert model.text_encoder.dtype == torch.float32
    assert torch.equal(model._text_conditioning(PROMPTS[:1], 3.0).hidden_states,
                       build_conditioning(bundle, PROMPTS[:1], guidance_scale=3.0).hidden_states)
