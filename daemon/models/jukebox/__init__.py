"""OpenAI Jukebox, implemented in riffd: load Hugging Face checkpoints, encode/decode audio with
the VQ-VAE, and sample music tokens with the three priors."""

from .model import JukeboxModel
from .sampler import LevelSampled, SamplingCancelled, WindowSampled
from .tokenizer import JukeboxTokenizer

__all__ = ["JukeboxModel", "JukeboxTokenizer", "LevelSampled", "SamplingCancelled", "WindowSampled"]
