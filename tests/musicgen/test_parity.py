"""Greedy decoding with guidance gives exactly the codes and audio of transformers' generate()."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from daemon.audio.types import Audio
from daemon.models.musicgen.chroma import chromagram
from daemon.models.musicgen.codec import encode_prompt
from daemon.models.musicgen.conditioning import build_conditioning
from daemon.models.musicgen.delay import delay_steps
from protocol.errors import InvalidArgument
from protocol.params import GenerationParams

GREEDY = GenerationParams(duration_s=1.0, greedy=True, guidance_scale=3.0)


def _tone(seconds: float, rate: int, channels: int = 1, freq: float = 220.0) -> Audio:
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.5 * np.sin(2 * np.pi * freq * t) * np.linspace(0.2, 1.0, t.size)
    return Audio(np.stack([wave * (1 + 0.3 * c) for c in range(channels)]).astype(np.float32), rate)


def _hf_generate(model, *, frames: int, **inputs) -> torch.Tensor:
    bundle = model.bundle
    max_new = frames + delay_steps(bundle.num_codebooks, bundle.audio_channels)
    with torch.inference_mode():
        out = bundle.model.generate(**inputs, do_sample=False, guidance_scale=3.0, max_new_tokens=max_new,
                                    return_dict_in_generate=True, output_scores=False)
    return out


def _hf_codes_and_audio(model, frames, **inputs):
    """transformers' codes (delay undone, pads dropped) and audio, by capturing what it decodes."""
    captured = {}
    codec = model.bundle.model.audio_encoder
    original = codec.decode

    def spy(codes, *args, **kwargs):
        captured.setdefault("codes", []).append(codes.clone())
        return original(codes, *args, **kwargs)

    codec.decode = spy
    try:
        out = _hf_generate(model, frames=frames, **inputs)
    finally:
        codec.decode = original
    parts = captured["codes"]
    if len(parts) == 1:
        codes = parts[0][0]
    else:  # stereo: left codebooks, then right; interleave them back
        left, right = parts[0][0], parts[1][0]
        codes = torch.empty((left.shape[0], 2 * left.shape[1], left.shape[2]), dtype=left.dtype)
        codes[:, ::2], codes[:, 1::2] = left, right
    return codes, out.sequences


def test_text_batch_of_different_lengths(musicgen):
    texts = ["an upbeat jazz tune with a walking bass", "drums"]
    render = musicgen.generate(texts, GREEDY)
    tokens = musicgen.bundle.tokenizer(texts, padding=True, return_tensors="pt")
    assert tokens.attention_mask.sum(1).tolist()[0] != tokens.attention_mask.sum(1).tolist()[1]
    codes, audio = _hf_codes_and_audio(musicgen, render.codes.shape[-1], **tokens)
    assert torch.equal(render.codes, codes)
    assert render.audio.shape == (2, 1, 32000)
    np.testing.assert_array_equal(render.audio, audio.numpy()[..., :32000])
    # The two prompts lead to different music: the conditioning reaches the decoder.
    assert not torch.equal(render.codes[0], render.codes[1])


def test_unconditional(musicgen):
    render = musicgen.generate_unconditional(1, GREEDY)
    inputs = musicgen.bundle.model.get_unconditional_inputs(num_samples=1)
    codes, audio = _hf_codes_and_audio(musicgen, render.codes.shape[-1], encoder_outputs=inputs.encoder_outputs,
                                       attention_mask=inputs.attention_mask)
    assert torch.equal(render.codes, codes)
    np.testing.assert_array_equal(render.audio, audio.numpy()[..., :32000])


@pytest.mark.parametrize("preset", ["debug/musicgen", "debug/musicgen-stereo"])
def test_audio_prompt(load_preset, preset):
    model = load_preset(preset)
    prompt = _tone(0.5, 44100, channels=2)  # a rate and channel count the model does not use
    render = model.generate_continuation(prompt, ["lofi piano"], GREEDY)
    prompt_codes = encode_prompt(model.bundle, prompt)
    assert render.prompt_frames == prompt_codes.shape[-1] == 25
    tokens = model.bundle.tokenizer(["lofi piano"], return_tensors="pt")
    codes, audio = _hf_codes_and_audio(
        model, 50, **tokens, decoder_input_ids=prompt_codes.reshape(-1, prompt_codes.shape[-1]))
    assert torch.equal(render.codes, codes)
    start = 25 * model.bundle.hop_length
    np.testing.assert_array_equal(render.audio, audio.numpy()[..., start:start + 32000])
    assert render.audio.shape == (1, model.audio_channels, 32000)


def test_stereo_text(load_preset):
    model = load_preset("debug/musicgen-stereo")
    render = model.generate(["ambient pads"], GREEDY)
    tokens = model.bundle.tokenizer(["ambient pads"], return_tensors="pt")
    codes, audio = _hf_codes_and_audio(model, render.codes.shape[-1], **tokens)
    assert torch.equal(render.codes, codes)
    assert render.audio.shape == (1, 2, 32000)
    np.testing.assert_array_equal(render.audio, audio.numpy()[..., :32000])
    assert not np.array_equal(render.audio[0, 0], render.audio[0, 1])


def test_melody(load_preset):
    model = load_preset("debug/musicgen-melody")
    melody = _tone(3.0, 22050, freq=330.0)
    render = model.generate_with_melody(["folk guitar"], melody, GREEDY)
    tokens = model.bundle.tokenizer(["folk guitar"], return_tensors="pt")
    features = chromagram(melody, model.bundle.chroma)
    codes, audio = _hf_codes_and_audio(model, render.codes.shape[-1], **tokens, input_features=features)
    assert torch.equal(render.codes, codes)
    np.testing.assert_array_equal(render.audio, audio.numpy()[..., :32000])
    # The melody reaches the decoder: another melody (G instead of E) gives other logits.
    # (The tiny random decoder reacts too weakly for its greedy codes to change.)
    bos = torch.full((model.bundle.num_codebooks, 1), model.bundle.pad_token_id)
    logits = []
    for freq in (330.0, 392.0):
        cond = build_conditioning(model.bundle, ["folk guitar"], guidance_scale=3.0, melody=_tone(3.0, 22050, freq=freq))
        with torch.inference_mode():
            logits.append(model.bundle.model.decoder(input_ids=bos.repeat(2, 1), encoder_hidden_states=cond.hidden_states).logits[:, -1])
    assert (logits[0] - logits[1]).abs().max() > 1e-6


def test_a_prompt_longer_than_the_window_continues_from_its_last_window(musicgen):
    bundle = musicgen.bundle
    # 40 frames past the window and half a frame more (a partial last frame is never encoded).
    too_long = _tone((bundle.window_frames + 40.5) / bundle.frame_rate, bundle.sample_rate)
    frames = too_long.frames // bundle.hop_length
    first_sample = (frames - (bundle.window_frames - 1)) * bundle.hop_length
    tail = Audio(too_long.samples[:, first_sample:], too_long.sample_rate)
    whole, end = (musicgen.generate_continuation(audio, ["x"], GREEDY) for audio in (too_long, tail))
    assert torch.equal(whole.codes, end.codes)
    np.testing.assert_array_equal(whole.audio, end.audio)
    assert whole.audio.shape[-1] == round(GREEDY.duration_s * bundle.sample_rate)


@pytest.mark.skipif(not os.environ.get("RIFFD_PARITY_MODELS"), reason="set RIFFD_PARITY_MODELS to check real checkpoints")
@pytest.mark.parametrize("model_id", [m for m in os.environ.get("RIFFD_PARITY_MODELS", "").split(",") if m])
def test_any_checkpoint(model_id):
    """Parity on any MusicGen folder or cached hub id: RIFFD_PARITY_MODELS=facebook/musicgen-small,/path/to/folder."""
    from daemon.models.registry import load_backend

    model = load_backend(model_id, device="cpu")
    render = model.generate(["an upbeat jazz tune"], GREEDY)
    tokens = model.bundle.tokenizer(["an upbeat jazz tune"], return_tensors="pt")
    codes, audio = _hf_codes_and_audio(model, render.codes.shape[-1], **tokens)
    assert torch.equal(render.codes, codes)
    samples = render.audio.shape[-1]
    np.testing.assert_array_equal(render.audio, audio.numpy()[..., :samples])


def test_continuation_starts_at_the_prompts_exact_end(musicgen):
    """A prompt that is not a whole number of codec frames: only whole frames are encoded and the
    new audio starts at the prompt's last sample, in one-shot renders and in streams alike."""
    hop = musicgen.bundle.hop_length
    prompt = _tone(0.51, 32000)  # 16320 samples = 25 frames + 320 samples
    params = GenerationParams(duration_s=0.5, greedy=True)
    render = musicgen.generate_continuation(prompt, ["x"], params)
    assert render.prompt_frames == 25
    assert torch.equal(render.codes[..., :25], encode_prompt(musicgen.bundle, Audio(prompt.samples[:, :25 * hop], 32000)))
    whole = musicgen.decode(render.codes)[0]
    np.testing.assert_array_equal(render.audio[0], whole[:, 16320:16320 + 16000])
    streamed = np.concatenate([c.audio for c in musicgen.stream("x", params, audio_prompt=prompt)], axis=1)
    assert streamed.shape == (1, 16000)
    error = streamed - render.audio[0]
    assert 10 * np.log10(np.sum(render.audio[0] ** 2) / max(np.sum(error**2), 1e-30)) > 40
    with pytest.raises(InvalidArgument, match="shorter than one codec frame"):
        musicgen.generate_continuation(_tone(0.01, 32000), ["x"], params)
