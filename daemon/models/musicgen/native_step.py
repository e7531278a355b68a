"""The int8 decode step as one native call (`daemon/native/decoder_step.c`), over `DecoderWeights`.

Same weights, same cache, same math as `Decoder.step`'s Python path with int8 projections;
only the glue between the weight products moves out of Python. Built at load when every
projection went to riffd's int8 kernel; otherwise the decoder keeps its Python step.
"""

from __future__ import annotations

import ctypes
import threading

import torch

from daemon.models.musicgen.kv_cache import KVCache
from daemon.models.musicgen.speed import Int8Linear, Linear
from daemon.models.musicgen.weights import DecoderWeights, NormWeights
from daemon.native import NativeUnavailable
from daemon.native.decoder_step import DecoderStruct, Int8Struct, LayerStruct, NormStruct, functions


def _norm(norm: NormWeights | None) -> NormStruct:
    if norm is None:
        return NormStruct()
    return NormStruct(norm.weight.data_ptr(), norm.bias.data_ptr())


def _packed(linear: Linear | None) -> Int8Struct:
    if linear is None:
        return Int8Struct.of(None)
    assert isinstance(linear, Int8Linear)
    return Int8Struct.of(linear.packed)


class NativeStep:
    """Call with the step's embedded input `[N, 1, H]`, the window's cache and the position: logits `[N, K * V]`."""

    #: The self-attention cache's dtype the native step reads and writes (int8 with a scale per vector).
    CACHE_DTYPE = torch.int8

    def __init__(self, weights: DecoderWeights) -> None:
        self.weights = weights
        self._functions = functions()
        # The cache, its condition version and the batch the structs below point into.
        self._window: tuple[KVCache, int, int] | None = None
        self._decoder = DecoderStruct()
        self._layers = (LayerStruct * len(weights.layers))()
        self.logit_columns = _packed(weights.lm_heads).rows  # K * V
        self._scratch = torch.empty(0)
        # The structs and the scratch are this object's: one step at a time, whichever thread calls.
        self._lock = threading.Lock()
        for struct, lw in zip(self._layers, weights.layers, strict=True):
            struct.self_norm, struct.cross_norm, struct.ffn_norm = _norm(lw.self_norm), _norm(lw.cross_norm), _norm(lw.ffn_norm)
            struct.qkv, struct.self_out = _packed(lw.qkv), _packed(lw.self_out)
            struct.cross_q, struct.cross_out = _packed(lw.cross_q), _packed(lw.cross_out)
            struct.fc1, struct.fc2 = _packed(lw.fc1), _packed(lw.fc2)

    @classmethod
    def build(cls, weights: DecoderWeights, device: torch.device) -> NativeStep | None:
        """A native step over `weights`, or None where they are not all in riffd's int8 kernel's layout."""
        linears = [weights.lm_heads] + [p for layer in weights.layers for p in layer.projections]
        if not all(isinstance(p, Int8Linear) and p.packed is not None for p in linears):
            return None
        if len({n.eps for n in weights.norms}) != 1 or device.type != "cpu" or weights.head_dim % 16:
            return None
        try:
            return cls(weights)
        except NativeUnavailable:
            return None

    def _bind(self, cache: KVCache, batch: int) -> None:
        """Point the structs at this window's cache (once a window) and size the scratch."""
        w, d = self.weights, self._decoder
        if cache.keys[0].dtype != self.CACHE_DTYPE or (cache.cross_keys and cache.cross_keys[0].dtype != torch.float32):
            raise ValueError("the native step needs an int8 self-attention cache and float32 cross-attention")
        for index, struct in enumerate(self._layers):
            struct.keys, struct.values = cache.keys[index].data_ptr(), cache.values[index].data_ptr()
            struct.key_scales, struct.value_scales = cache.key_scales[index].data_ptr(), cache.value_scales[index].data_ptr()
            # Melody checkpoints have no cross-attention: no cross keys, and the layers' cross_q is NULL.
            struct.cross_keys = cache.cross_keys[index].data_ptr() if cache.cross_keys else None
            struct.cross_values = cache.cross_values[index].data_ptr() if cache.cross_values else None
        cross_len = cache.cross_keys[0].shape[2] if cache.cross_keys else 0
        fc1 = w.layers[0].fc1
        assert isinstance(fc1, Int8Linear) and fc1.packed is not None
        d.batch, d.hidden, d.heads, d.head_dim = batch, w.hidden, w.heads, w.head_dim
        d.ffn, d.max_positions, d.cross_len, d.layers = fc1.packed.rows, cache.max_positions, cross_len, len(self._layers)
        d.eps = w.final_norm.eps
        if cache.cross_mask is not None and not cache.cross_mask.is_contiguous():
            raise ValueError("the cross-attention mask must be contiguous")
        d.cross_mask = cache.cross_mask.data_ptr() if cache.cross_mask is not None else None
        d.layer = ctypes.cast(self._layers, ctypes.POINTER(LayerStruct))
        d.final_norm, d.lm_heads = _norm(w.final_norm), _packed(w.lm_heads)
        needed = self._functions.riffd_decoder_scratch_floats(ctypes.byref(d))
        if self._scratch.numel() < needed:
            self._scratch = torch.empty(needed, dtype=torch.float32)
        d.scratch = self._scratch.data_ptr()
        self._window = (cache, cache.condition_version, batch)

    def forget(self) -> None:
        """Rebind at the next step: a cache's tensors were replaced (its cross-attention, say)."""
        with self._lock:
            self._window = None

    def __call__(self, x: torch.Tensor, cache: KVCache, position: int) -> torch.Tensor:
        batch = x.shape[0]
        # The C side trusts these: check them here, where a mistake is an exception, not a stray write.
        if not 0 <= position < cache.max_positions:
            raise ValueError(f"position {position} outside the window's cache of {cache.max_positions}")
        if not cache.keys or cache.keys[0].shape[0] != batch or x.shape[-1] != self.weights.hidden:
            raise ValueError(f"input {tuple(x.shape)} does not match the window's cache")
        hidden = x.reshape(batch, -1).to(torch.float32).contiguous()  # overwritten in place by the step
        logits = torch.empty((batch, self.logit_columns), dtype=torch.float32)
        with self._lock:
            window = self._window
            if window is None or window[0] is not cache or window[1:] != (cache.condition_version, batch):
                self._bind(cache, batch)
            self._decoder.threads = torch.get_num_threads()
            # ctypes releases the GIL for the call: the daemon's other threads run meanwhile.
            self._functions.riffd_decoder_step(ctypes.byref(self._decoder), hidden.data_ptr(), position,
                                               logits.data_ptr())
        return logits
