"""EnCodec at the edges of generation: audio prompt to codes, codes to audio.

Stereo checkpoints interleave the channels' codebooks (left, right, left, right...), each
channel coded by the same mono EnCodec.
"""

from __future__ import annotations

import numpy as np
import torch

from daemon.audio.resample import conform
from daemon.audio.types import Audio
from daemon.models.musicgen.loader import MusicgenBundle


@torch.inference_mode()
def encode_prompt(bundle: MusicgenBundle, audio: Audio) -> torch.Tensor:
    """Codes `[1, K, frames]` of `audio`, converted to the model's rate and channel count."""
    conformed = conform(audio, bundle.sample_rate, bundle.audio_channels)
    wav = torch.from_numpy(conformed.samples).to(bundle.device)[None]  # [1, C, T]
    codec = bundle.model.audio_encoder
    per_channel = [codec.encode(wav[:, c : c + 1]).audio_codes[0] for c in range(bundle.audio_channels)]
    # Internal invariant: the codec's bandwidth gives the decoder's number of codebooks per channel.
    assert per_channel[0].shape[1] * bundle.audio_channels == bundle.num_codebooks, per_channel[0].shape
    if len(per_channel) == 1:
        return per_channel[0]
    left, right = per_channel
    codes = torch.empty((1, 2 * left.shape[1], left.shape[2]), dtype=left.dtype, device=left.device)
    codes[:, ::2], codes[:, 1::2] = left, right
    return codes


@torch.inference_mode()
def decode_codes(bundle: MusicgenBundle, codes: torch.Tensor) -> torch.Tensor:
    """Audio `[B, channels, frames * hop]` of codes `[B, K, frames]`."""
    codec = bundle.model.audio_encoder
    if bundle.audio_channels == 1:
        return codec.decode(codes[None], audio_scales=[None]).audio_values
    halves = [codec.decode(codes[None, :, c::2], audio_scales=[None]).audio_values for c in (0, 1)]
    return torch.cat(halves, dim=1)


def to_numpy(audio: torch.Tensor) -> np.ndarray:
    """float32 numpy copy of a `[C, T]` tensor, on the host."""
    return np.ascontiguousarray(audio.detach().to("cpu", torch.float32).numpy())
