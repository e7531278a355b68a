"""OpenAI Jukebox, implemented in riffd.

Loads Hugging Face checkpoints (`JukeboxModel.from_pretrained("openai/jukebox-1b-lyrics")`
or a folder), encodes/decodes audio with the VQ-VAE, and samples music tokens with the three
priors. Token lists are in prior order: index 0 is the top (coarsest) level.

Batch API (names as in transformers' Jukebox, upstream bugs fixed):
    tokenizer = JukeboxTokenizer.from_pretrained(path)
    labels = tokenizer(artist=..., genres=..., lyrics=...)["input_ids"]
    tokens = model.ancestral_sample(labels, sample_length_in_seconds=20, seed=0)
    tokens = model.upsample([top, empty, empty], labels)          # levels below the top
    tokens = model.primed_sample(audio [B, T, 1], labels)         # continue an audio prime
    tokens = model.continue_sample(tokens, labels, sample_length=...)
    audio = model.decode_level(tokens, level=2)                   # [B, T, 1]

Streaming API for the daemon: `model.sample_windows(music_tokens, labels, sample_levels=...,
should_stop=..., progress=..., **sampling_kwargs)` yields `WindowSampled` after every window
and `LevelSampled` after every level. Decode `LevelSampled(level=0)` with `decode_level` for a
preview; for an audio prime, `model.prime_tokens(audio)` gives the context tokens; feed each bottom-level `WindowSampled.music_tokens[-1]` to a `StreamingDecoder`
for exact audio chunks. `should_stop()` is checked before every token; it ends the stream with
`SamplingCancelled`, which carries the tokens sampled so far. Each call owns its key/value
caches and (with `seed=`) its random generator, so concurrent jobs do not interfere.

Speed: `from_pretrained(..., step="compiled")` samples with a fixed-shape step through
`torch.compile` (compiled and warmed up at load; same tokens as the reference), "static" is
the same step uncompiled, "eager" (default) slices the caches instead.
"""

from .model import JukeboxModel
from .sampler import LevelSampled, SamplingCancelled, SamplingParams, WindowSampled
from .streaming import StreamingDecoder
from .tokenizer import JukeboxTokenizer

__all__ = [
    "JukeboxModel",
    "JukeboxTokenizer",
    "LevelSampled",
    "SamplingCancelled",
    "SamplingParams",
    "StreamingDecoder",
    "WindowSampled",
]
