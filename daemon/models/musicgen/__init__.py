"""MusicGen through Hugging Face transformers: loading, conditioning, generation."""
