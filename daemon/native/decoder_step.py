"""ctypes mirror of `riffd_native.h`'s decoder structs, and the call into `decoder_step.c`."""

from __future__ import annotations

import ctypes
import functools

from daemon.native import kernels
from daemon.native.int8_matvec import PackedInt8

_ptr = ctypes.c_void_p


class Int8Struct(ctypes.Structure):
    _fields_ = [("packed", _ptr), ("row_sums", _ptr), ("scales", _ptr), ("rows", ctypes.c_int64),
                ("cols", ctypes.c_int64)]

    @classmethod
    def of(cls, weights: PackedInt8 | None) -> "Int8Struct":
        if weights is None:
            return cls()  # packed NULL: the layer has no such projection
        return cls(weights.packed.data_ptr(), weights.row_sums.data_ptr(), weights.scales.data_ptr(), weights.rows,
                   weights.cols)


class NormStruct(ctypes.Structure):
    _fields_ = [("weight", _ptr), ("bias", _ptr)]


class LayerStruct(ctypes.Structure):
    _fields_ = [("self_norm", NormStruct), ("qkv", Int8Struct), ("self_out", Int8Struct),
                ("cross_norm", NormStruct), ("cross_q", Int8Struct), ("cross_out", Int8Struct),
                ("ffn_norm", NormStruct), ("fc1", Int8Struct), ("fc2", Int8Struct),
                ("keys", _ptr), ("values", _ptr), ("key_scales", _ptr), ("value_scales", _ptr),
                ("cross_keys", _ptr), ("cross_values", _ptr)]


class DecoderStruct(ctypes.Structure):
    _fields_ = [("batch", ctypes.c_int64), ("hidden", ctypes.c_int64), ("heads", ctypes.c_int64),
                ("head_dim", ctypes.c_int64), ("ffn", ctypes.c_int64), ("max_positions", ctypes.c_int64),
                ("cross_len", ctypes.c_int64), ("layers", ctypes.c_int64), ("eps", ctypes.c_float),
                ("cross_mask", _ptr), ("layer", ctypes.POINTER(LayerStruct)), ("final_norm", NormStruct),
                ("lm_heads", Int8Struct), ("scratch", _ptr), ("threads", ctypes.c_int)]


@functools.cache  # a failure raises, so it is not cached
def functions() -> ctypes.CDLL:
    """The library with the decoder step's signatures set; NativeUnavailable where it cannot run."""
    loaded = kernels()
    loaded.riffd_decoder_scratch_floats.argtypes = [ctypes.POINTER(DecoderStruct)]
    loaded.riffd_decoder_scratch_floats.restype = ctypes.c_int64
    loaded.riffd_decoder_step.argtypes = [ctypes.POINTER(DecoderStruct), _ptr, ctypes.c_int64, _ptr]
    loaded.riffd_decoder_step.restype = None
    loaded.riffd_gelu.argtypes = [_ptr, ctypes.c_int64]
    loaded.riffd_gelu.restype = None
    return loaded
