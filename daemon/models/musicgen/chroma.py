"""Melody conditioning: the one-hot chromagram MusicGen Melody takes, computed with torch alone.

transformers' MusicgenMelodyFeatureExtractor needs torchaudio; this follows its recipe (pad or
cut to `chunk_length` s, window-normalised power STFT, librosa-style chroma filters, arg-max
one-hot per frame) so checkpoints get the features they were trained with.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from daemon.audio.resample import conform
from daemon.audio.types import Audio


@dataclass(frozen=True)
class ChromaSettings:
    """The checkpoint's preprocessor_config.json fields that shape the chromagram."""

    sampling_rate: int = 32000
    n_fft: int = 16384
    hop_length: int = 4096
    num_chroma: int = 12
    chunk_length_s: int = 30

    @classmethod
    def from_folder(cls, folder: Path) -> "ChromaSettings":
        path = folder / "preprocessor_config.json"
        raw = json.loads(path.read_text()) if path.is_file() else {}
        return cls(
            sampling_rate=int(raw.get("sampling_rate", cls.sampling_rate)),
            n_fft=int(raw.get("n_fft", cls.n_fft)),
            hop_length=int(raw.get("hop_length", cls.hop_length)),
            num_chroma=int(raw.get("num_chroma", raw.get("feature_size", cls.num_chroma))),
            chunk_length_s=int(raw.get("chunk_length", cls.chunk_length_s)),
        )


def chromagram(melody: Audio, settings: ChromaSettings) -> torch.Tensor:
    """One-hot chroma `[1, frames, num_chroma]` (float32) of `melody`, mixed to mono."""
    from transformers.audio_utils import chroma_filter_bank

    mono = conform(melody, settings.sampling_rate, 1).samples[0]
    wav = torch.from_numpy(np.ascontiguousarray(mono))
    n_samples = settings.chunk_length_s * settings.sampling_rate
    wav = torch.nn.functional.pad(wav[:n_samples], (0, max(0, n_samples - wav.shape[0])))
    if wav.shape[0] < settings.n_fft:  # centre short inputs, as the reference does
        pad = settings.n_fft - wav.shape[0]
        wav = torch.nn.functional.pad(wav, (pad // 2, pad - pad // 2))
    window = torch.hann_window(settings.n_fft)
    spec = torch.stft(wav, settings.n_fft, settings.hop_length, window=window, center=True,
                      pad_mode="reflect", return_complex=True)
    # Power spectrum, normalised by the window's energy (torchaudio's normalized=True).
    power = spec.abs().pow(2) / window.pow(2).sum()
    filters = torch.from_numpy(chroma_filter_bank(
        sampling_rate=settings.sampling_rate, num_frequency_bins=settings.n_fft, tuning=0,
        num_chroma=settings.num_chroma)).float()
    raw = filters @ power  # [chroma, frames]
    norm = torch.nn.functional.normalize(raw, p=float("inf"), dim=0, eps=1e-6)
    one_hot = torch.zeros_like(norm.T)
    one_hot.scatter_(1, norm.T.argmax(dim=1, keepdim=True), 1.0)
    return one_hot[None]
