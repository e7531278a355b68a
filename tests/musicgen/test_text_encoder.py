"""A prompt's condition made faster for approximate engines (bfloat16 where bfloat16 is native,
riffd's int8 kernel on other x86 CPUs): within its stated bound of float32's, with the int8
engine's greedy agreement kept; float32 engines keep the checkpoint's own tensors (exact parity).
Guidance's null rows are not multiplied at all, and their keys are exactly what multiplying gives."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from daemon.cpu import CpuInfo
from daemon.models.musicgen import condition_precision
from daemon.models.musicgen import decoder as decoder_module
from daemon.models.musicgen.agreement import compare
from daemon.models.musicgen.backend import MusicGen
from daemon.models.musicgen.conditioning import build_conditioning
from daemon.models.musicgen.engine import MusicgenEngine
from daemon.models.musicgen.options import EngineOptions
from daemon.models.musicgen.speed import Int8Linear
from daemon.models.musicgen.text_encoder import MAX_RELATIVE_ERROR, Int8Projection, SharedQkvProjection, TextEncoder
from daemon.models.musicgen.weights import decoder_weights

PROMPTS = ["80s pop track with bassy drums and synth", "a slow cello"]
CPU = torch.device("cpu")
APPROXIMATE = ("int8", "int8a8", "int4", "int8dyn", "bfloat16")


def _relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got.float() - want).norm() / want.norm())


def _cpu_with(flags: set[str]) -> CpuInfo:
    return CpuInfo(model="test", machine="x86_64", flags=frozenset(flags | {"avx2", "fma"}), cores=2)


def _needs_int8_kernel() -> None:
    if not condition_precision.int8_kernel_runs(CPU):
        pytest.skip("riffd's int8 kernel does not run here")


@pytest.fixture
def int8_condition(monkeypatch):
    """Approximate engines make their condition on riffd's int8 kernel, as on a CPU without native bfloat16."""
    _needs_int8_kernel()
    monkeypatch.setattr(condition_precision, "fast_bfloat16", lambda device: False)


@pytest.mark.parametrize(("flags", "kernel", "expected"), [
    ({"avx512_bf16"}, True, "bfloat16"), ({"avx512_bf16"}, False, "bfloat16"),
    ({"amx_bf16"}, False, "bfloat16"), ({"amx_bf16", "avx512_bf16"}, True, "bfloat16"),
    (set(), True, "int8"), (set(), False, "float32")])
def test_approximate_engines_condition_in_bfloat16_where_native_else_on_the_int8_kernel(monkeypatch, flags, kernel,
                                                                                       expected):
    monkeypatch.setattr(condition_precision, "this_cpu", lambda: _cpu_with(flags))
    monkeypatch.setattr(condition_precision.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(condition_precision, "int8_kernel_runs", lambda device: kernel and device.type == "cpu")
    for variable in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):  # as on a CPU run without `--emulate`
        monkeypatch.delenv(variable, raising=False)
    # The text encoder: the int8 kernel wherever it runs, unless bfloat16 is on AMX tiles.
    encoder = "int8" if kernel and "amx_bf16" not in flags else expected
    for weights in APPROXIMATE:
        assert condition_precision.condition_precision(EngineOptions(weights=weights), CPU) == expected
        assert condition_precision.encoder_precision(EngineOptions(weights=weights), CPU) == encoder
    for exact in (EngineOptions(), EngineOptions(draft=True), None):
        assert condition_precision.condition_precision(exact, CPU) == "float32"
        assert condition_precision.encoder_precision(exact, CPU) == "float32"
    assert condition_precision.condition_precision(EngineOptions(weights="int8"), torch.device("meta")) == "float32"
    # oneDNN capped below AVX-512 BF16 (as `--emulate avx2` does) emulates bfloat16: int8 (or float32) then.
    for variable in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
        monkeypatch.setenv(variable, "AVX2")
        assert condition_precision.condition_precision(EngineOptions(weights="int8"), CPU) == \
            ("int8" if kernel else "float32")
        monkeypatch.setenv(variable, "AVX512_CORE_AMX")
        assert condition_precision.condition_precision(EngineOptions(weights="int8"), CPU) == expected
        monkeypatch.delenv(variable)


@pytest.mark.parametrize("precision", ["bfloat16", "int8"])
def test_a_faster_condition_keeps_its_bound_and_float32_keeps_the_checkpoints_tensors(load_preset, monkeypatch,
                                                                                      precision):
    bundle = load_preset("debug/musicgen").bundle
    if precision == "int8":
        _needs_int8_kernel()
    exact = build_conditioning(bundle, PROMPTS, guidance_scale=3.0)
    # The encoder's hidden states (the mask, padding and the null half are the same).
    encoder = TextEncoder(bundle, precision)
    fast = build_conditioning(bundle, PROMPTS, guidance_scale=3.0, encoder=encoder)
    assert fast.hidden_states.dtype == torch.float32
    assert torch.equal(fast.attention_mask, exact.attention_mask)
    error = _relative_error(fast.hidden_states, exact.hidden_states)
    print(f"{precision} encoder: relative error {error:.4f}")
    assert 0 < error <= MAX_RELATIVE_ERROR[precision]
    if precision == "int8":  # every linear layer on the kernel, in a copy: the checkpoint's encoder untouched
        modules = list(encoder._encoder.modules())
        assert not any(isinstance(m, torch.nn.Linear) for m in modules)
        assert sum(isinstance(m, Int8Projection) for m in modules) == 6 * bundle.model.config.text_encoder.num_layers
        assert isinstance(bundle.model.text_encoder.encoder.block[0].layer[0].SelfAttention.q, torch.nn.Linear)
    # The cross-attention key/value projections of an approximate engine, within the same bound.
    monkeypatch.setattr(condition_precision, "fast_bfloat16", lambda device: precision == "bfloat16")
    int8 = decoder_weights(bundle.model, EngineOptions(weights="int8"))
    layers = bundle.model.decoder.model.decoder.layers
    kind = torch.Tensor if precision == "bfloat16" else Int8Linear
    assert all(isinstance(w.cross_k, kind) and isinstance(w.cross_v, kind) for w in int8.layers)
    keys = condition_precision.project(exact.hidden_states, int8.layers[0].cross_k)
    reference = F.linear(exact.hidden_states, layers[0].encoder_attn.k_proj.weight.detach())
    assert keys.dtype == (torch.bfloat16 if precision == "bfloat16" else torch.float32)
    assert 0 < _relative_error(keys, reference) <= MAX_RELATIVE_ERROR[precision]
    # float32 engines: the checkpoint's own tensors and encoder, so their audio is transformers'.
    float32 = decoder_weights(bundle.model, EngineOptions())
    assert all(w.cross_k.data_ptr() == layer.encoder_attn.k_proj.weight.data_ptr()
               for w, layer in zip(float32.layers, layers, strict=True))
    model = MusicGen(dataclasses.replace(bundle), engine=EngineOptions(warmup=False))
    assert model.text_encoder.precision == "float32"
    assert torch.equal(model._text_conditioning(PROMPTS[:1], 3.0).hidden_states,
                       build_conditioning(bundle, PROMPTS[:1], guidance_scale=3.0).hidden_states)


def test_the_int8_encoders_query_key_and_value_are_one_product_with_each_ones_bits(load_preset, monkeypatch):
    """The int8 encoder multiplies each attention layer's states by its query, key and value
    projections in one product (text_encoder.SharedQkv): 4 products a layer instead of 6, and the
    hidden states each projection's own product gives, to the bit."""
    _needs_int8_kernel()
    bundle = load_preset("debug/musicgen").bundle
    fused = TextEncoder(bundle, "int8")
    layers = bundle.model.config.text_encoder.num_layers
    assert sum(isinstance(m, SharedQkvProjection) for m in fused._encoder.modules()) == 3 * layers
    separate = TextEncoder(bundle, "int8")
    for module in separate._encoder.modules():  # each projection on its own
        for name in ("q", "k", "v"):
            part = getattr(module, name, None)
            if isinstance(part, SharedQkvProjection):
                setattr(module, name, Int8Projection(part.shared.parts[part.index], part.weight.shape))
    products: list[int] = []
    real_call = Int8Linear.__call__
    monkeypatch.setattr(Int8Linear, "__call__", lambda self, x: products.append(1) or real_call(self, x))
    tokens = bundle.tokenizer(PROMPTS, padding=True, return_tensors="pt")
    want = separate(tokens["input_ids"], tokens["attention_mask"])
    assert len(products) == 6 * layers
    products.clear()
    got = fused(tokens["input_ids"], tokens["attention_mask"])
    assert len(products) == 4 * layers
    assert torch.equal(got, want)


def test_the_int8_condition_keeps_the_int8_engines_greedy_agreement(load_preset, int8_condition):
    """The encoder and the cross keys on the int8 kernel, against float32's own condition (the issue's bar: 90 %)."""
    bundle = load_preset("debug/musicgen").bundle
    reference = MusicgenEngine(bundle, EngineOptions(warmup=False))
    fast = MusicgenEngine(bundle, EngineOptions(weights="int8", warmup=False))
    assert isinstance(fast.decoder.weights.layers[0].cross_k, Int8Linear)
    exact = build_conditioning(bundle, PROMPTS, guidance_scale=3.0)
    int8 = build_conditioning(bundle, PROMPTS, guidance_scale=3.0, encoder=TextEncoder(bundle, "int8"))
    agreement = compare(reference, fast, exact, frames=40, fast_cond=int8)
    print(agreement)
    assert agreement.token_agreement >= 0.9


@pytest.mark.parametrize("weights", ["float32", "int8"])
def test_the_null_condition_is_not_multiplied_and_its_keys_are_what_multiplying_gives(load_preset, monkeypatch,
                                                                                       int8_condition, weights):
    bundle = load_preset("debug/musicgen").bundle
    decoder = MusicgenEngine(bundle, EngineOptions(weights=weights, warmup=False)).decoder
    cond = build_conditioning(bundle, PROMPTS, guidance_scale=3.0)  # [4, S, H]: two prompts, two null rows
    assert cond.guided and not bool(cond.hidden_states[2:].any())
    projected_rows: list[int] = []
    real_project = condition_precision.project

    def counting(states: torch.Tensor, projection: condition_precision.CrossProjection) -> torch.Tensor:
        projected_rows.append(states.shape[0])
        return real_project(states, projection)

    monkeypatch.setattr(decoder_module, "project", counting)
    w = decoder.weights
    with decoder.open_cache(4, 8) as cache:
        decoder.set_condition(cache, cond)
        # Only the two prompts' rows were multiplied: by each layer's key and value projection
        # (float32), or once by them all stacked (int8: `DecoderWeights.cross_kv`).
        assert (w.cross_kv is None) == (weights == "float32")
        assert projected_rows == ([2] if w.cross_kv is not None else [2] * (2 * len(w.layers)))
        for layer, keys, values in zip(w.layers, cache.cross_keys, cache.cross_values, strict=True):
            for got, projection in ((keys, layer.cross_k), (values, layer.cross_v)):
                # Multiplying every row (the null ones too) gives the same bits.
                assert projection is not None
                want = real_project(cond.hidden_states, projection)
                want = want.view(4, -1, w.heads, w.head_dim).transpose(1, 2).to(w.dtype)
                assert torch.equal(got, want)
                assert not bool(got[2:].any())


@pytest.mark.parametrize("precision", ["bfloat16", "int8"])
def test_keys_come_from_one_stacked_product_with_each_layers_bits(load_preset, monkeypatch, precision):
    """Where the condition is bfloat16 or int8, every layer's cross keys and values come from one
    product by the stacked projections (`DecoderWeights.cross_kv`, which each layer's are views of),
    with the bits each layer's own product gives (int8: a projection made of that layer's weight
    alone, its own codes and scales); the null rows are not multiplied and are zero."""
    if precision == "int8":
        _needs_int8_kernel()
    monkeypatch.setattr(condition_precision, "fast_bfloat16", lambda device: precision == "bfloat16")
    bundle = load_preset("debug/musicgen").bundle
    decoder = MusicgenEngine(bundle, EngineOptions(weights="int8", warmup=False)).decoder
    w = decoder.weights
    checkpoint = bundle.model.decoder.model.decoder.layers
    if precision == "bfloat16":
        assert isinstance(w.cross_kv, torch.Tensor) and w.cross_kv.dtype == torch.bfloat16
        assert w.cross_kv.shape == (2 * len(w.layers) * w.hidden, w.cross_kv.shape[1])
        assert all(isinstance(layer.cross_k, torch.Tensor) and layer.cross_k.untyped_storage().data_ptr()
                   == w.cross_kv.untyped_storage().data_ptr() for layer in w.layers)
    else:
        assert isinstance(w.cross_kv, Int8Linear) and w.cross_kv.packed is not None
        assert w.cross_kv.out_features == 2 * len(w.layers) * w.hidden
        assert all(isinstance(layer.cross_v, Int8Linear) and layer.cross_v.packed is not None
                   and layer.cross_v.packed.packed.untyped_storage().data_ptr()
                   == w.cross_kv.packed.packed.untyped_storage().data_ptr() for layer in w.layers)
    assert decoder_weights(bundle.model, EngineOptions()).cross_kv is None  # float32: the checkpoint's tensors
    cond = build_conditioning(bundle, PROMPTS, guidance_scale=3.0)  # [4, S, H]: two prompts, two null rows
    products: list[tuple[int, ...]] = []
    real_project = condition_precision.project

    def counting(states: torch.Tensor, projection: condition_precision.CrossProjection) -> torch.Tensor:
        products.append(tuple(states.shape))
        return real_project(states, projection)

    monkeypatch.setattr(decoder_module, "project", counting)
    with decoder.open_cache(4, 8) as cache:
        decoder.set_condition(cache, cond)
        assert products == [(2, *cond.hidden_states.shape[1:])]
        for index, (layer, keys, values) in enumerate(zip(w.layers, cache.cross_keys, cache.cross_values,
                                                          strict=True)):
            attention = checkpoint[index].encoder_attn
            for got, projection, weight in ((keys, layer.cross_k, attention.k_proj.weight),
                                            (values, layer.cross_v, attention.v_proj.weight)):
                assert projection is not None and got.is_contiguous()
                if precision == "int8":  # the layer's own weight alone, quantised on its own
                    projection = condition_precision.cross_projection(weight, "int8")
                want = real_project(cond.hidden_states[:2], projection)
                want = want.view(2, -1, w.heads, w.head_dim).transpose(1, 2).to(w.dtype)
                assert torch.equal(got[:2], want)
                assert not bool(got[2:].any())


def test_where_bfloat16_is_native_without_amx_the_encoder_runs_on_the_int8_kernel_and_the_keys_in_bfloat16(
        load_preset, monkeypatch):
    """A served approximate engine on an AVX-512 BF16 CPU (Zen 4): the text encoder on riffd's int8
    kernel (faster there than bfloat16), the cross keys from the stacked bfloat16 product."""
    _needs_int8_kernel()
    monkeypatch.setattr(condition_precision, "fast_bfloat16", lambda device: True)
    monkeypatch.setattr(condition_precision, "this_cpu", lambda: _cpu_with({"avx512_bf16"}))
    bundle = load_preset("debug/musicgen").bundle
    model = MusicGen(dataclasses.replace(bundle), engine=EngineOptions(weights="int8", warmup=False))
    assert model.text_encoder.precision == "int8"
    assert model.engine is not None and model.engine.decoder.weights.cross_kv is not None
    exact = build_conditioning(bundle, PROMPTS[:1], guidance_scale=3.0).hidden_states
    error = _relative_error(model._text_conditioning(PROMPTS[:1], 3.0).hidden_states, exact)
    assert 0 < error <= MAX_RELATIVE_ERROR["int8"]
