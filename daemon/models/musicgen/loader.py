"""Loading a MusicGen checkpoint folder: model, text tokenizer, melody feature settings, facts."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from daemon.models.musicgen.chroma import ChromaSettings
from protocol.errors import InvalidArgument, ModelUnavailable, UnknownModel

log = logging.getLogger(__name__)

#: Files a MusicGen checkpoint needs (safetensors weights, configs, tokenizer files).
HUB_PATTERNS = ("*.json", "*.safetensors", "*.model", "*.txt")
#: audiocraft's MusicGen window: what one pass of the model generates at most (protocol's
#: MAX_JAM_WINDOW_S refuses longer jam windows at the request).
MODEL_WINDOW_S = 30.0


@dataclass(frozen=True)
class MusicgenBundle:
    """A loaded checkpoint and the facts the generation path needs."""

    model_id: str
    folder: Path
    # MusicgenForConditionalGeneration or MusicgenMelodyForConditionalGeneration: reached by
    # attribute (text encoder, decoder, codec), which torch's Module typing cannot follow.
    model: Any
    tokenizer: Any  # transformers' tokenizer of the text encoder
    chroma: ChromaSettings | None  # set for melody checkpoints
    device: torch.device
    sample_rate: int
    hop_length: int  # audio samples per codec frame
    num_codebooks: int  # decoder codebooks, both channels together for stereo
    audio_channels: int
    pad_token_id: int
    window_frames: int  # frames one window of generation may hold, prompt included

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    @property
    def is_melody(self) -> bool:
        return self.chroma is not None


def pick_device(device: str = "auto") -> torch.device:
    """Resolve 'auto' to the best device present; refuse devices this machine lacks."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelUnavailable(f"device {device} was asked for but no CUDA GPU is available")
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ModelUnavailable("device mps was asked for but Metal is not available")
    try:
        return torch.device(device)
    except RuntimeError as exc:
        # A misspelt device is the request's mistake, not the model's.
        raise InvalidArgument(f"unknown device {device!r} (use auto, cpu, cuda or mps)") from exc


def device_name(device: torch.device) -> str:
    """`device` as the daemon reports it: a bare "cuda" (the current GPU, where `.to("cuda")` puts
    weights) with its index, "cuda:0", so that status names the GPU in use."""
    if device.type == "cuda" and device.index is None:
        return f"cuda:{torch.cuda.current_device()}"
    return str(device)


def load_folder(folder: Path, *, model_id: str, device: torch.device) -> MusicgenBundle:
    """Load a MusicGen (or MusicGen Melody) folder written by `save_pretrained`."""
    from transformers import AutoTokenizer, MusicgenForConditionalGeneration, MusicgenMelodyForConditionalGeneration

    model_type = json.loads((folder / "config.json").read_text()).get("model_type")
    classes: dict[str, Any] = {"musicgen": MusicgenForConditionalGeneration, "musicgen_melody": MusicgenMelodyForConditionalGeneration}
    if model_type not in classes:
        raise UnknownModel(f"{model_id} is a {model_type!r} checkpoint, not MusicGen")
    log.info("loading %s (%s) from %s on %s", model_id, model_type, folder, device)
    try:
        model = classes[model_type].from_pretrained(folder, dtype=torch.float32).to(device).eval()
        tokenizer = AutoTokenizer.from_pretrained(folder)
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelUnavailable(f"cannot load model {model_id} from {folder}: {exc}") from exc
    chroma = ChromaSettings.from_folder(folder) if model_type == "musicgen_melody" else None
    codec = model.config.audio_encoder
    decoder = model.config.decoder
    hop_length = int(math.prod(codec.upsampling_ratios))
    frame_rate = codec.sampling_rate / hop_length
    # The sinusoidal positions cap a window too; the delay pattern adds K - 1 steps and BOS one.
    positions_limit = decoder.max_position_embeddings - decoder.num_codebooks
    if chroma is not None:
        positions_limit -= model.config.chroma_length
    window_frames = int(min(MODEL_WINDOW_S * frame_rate, positions_limit))
    return MusicgenBundle(
        model_id=model_id, folder=folder, model=model, tokenizer=tokenizer, chroma=chroma, device=device,
        sample_rate=int(codec.sampling_rate), hop_length=hop_length, num_codebooks=int(decoder.num_codebooks),
        audio_channels=int(decoder.audio_channels), pad_token_id=int(decoder.pad_token_id),
        window_frames=window_frames,
    )
