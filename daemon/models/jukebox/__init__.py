"""OpenAI Jukebox, implemented in riffd: load Hugging Face checkpoints, encode/decode audio with
the VQ-VAE, and sample music tokens with the three priors."""

from .model import JukeboxModel
from .sampler import LevelSampled, SamplingCancelled, WindowSampled

__all__ = ["JukeboxModel", "LevelSampled", "SamplingCancelled", "WindowSampled"]
