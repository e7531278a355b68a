"""A stateful streaming EnCodec decode: codes in pieces, each frame decoded once.

`DecoderPlan` reads a checkpoint's EnCodec once (quantizer, and the SEANet decoder's layers as
streaming specs with weight norm applied); `EncodecStream` is one stream's state over it. Each
`push` returns the audio no later frame can change; the rest (the decoder's right lookahead,
2402 samples for EnCodec 32 kHz) waits for more frames or for `flush` at the end of the stream.
Joined, the pieces equal `EncodecModel.decode` of the whole sequence within float rounding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from daemon.models.musicgen.encodec_stages import (
    CHANNELS,
    Chain,
    ConvSpec,
    ConvTransposeSpec,
    EluSpec,
    Lstm,
    LstmSpec,
    ResidualSpec,
    State,
    to_layout,
)
from protocol.errors import Unsupported

#: Frames of LSTM output the layers after it re-run at the end of a context (`push_context`):
#: well past their receptive field (one frame of transposed-convolution overlap, then a few samples).
CONTEXT_TAIL_FRAMES = 4


@dataclass(frozen=True, eq=False)
class DecoderPlan:
    """What every stream of one EnCodec shares: its quantizer and its decoder's layer specs."""

    quantizer: torch.nn.Module  # the checkpoint's EncodecResidualVectorQuantizer
    layers: tuple  # specs, input to output
    embedding_channels: int  # the quantizer's output, the decoder's input
    audio_channels: int  # per stream (MusicGen: 1; stereo checkpoints decode two streams)
    hop_length: int  # audio samples per frame

    @classmethod
    @torch.no_grad()
    def from_model(cls, codec: torch.nn.Module) -> DecoderPlan:
        """Read `codec`, a transformers `EncodecModel`; refuse codecs that cannot stream."""
        config = codec.config
        if config.chunk_length_s is not None:
            raise Unsupported("this EnCodec decodes overlapping chunks (chunk_length_s); riffd streams only whole-sequence codecs")
        return cls(
            quantizer=codec.quantizer,
            layers=tuple(_spec(layer, config) for layer in codec.decoder.layers),
            embedding_channels=int(config.hidden_size),
            audio_channels=int(config.audio_channels),
            hop_length=int(math.prod(config.upsampling_ratios)),
        )

    @property
    def like(self) -> torch.Tensor:
        """A tensor of the decoder's dtype and device."""
        return self.quantizer.layers[0].codebook.embed


def _spec(module: torch.nn.Module, config) -> object:
    """The streaming spec of one SEANet decoder layer."""
    from transformers.models.encodec.modeling_encodec import (
        EncodecConv1d,
        EncodecConvTranspose1d,
        EncodecLSTM,
        EncodecResnetBlock,
    )

    if isinstance(module, torch.nn.ELU):
        return EluSpec(float(module.alpha))
    if isinstance(module, EncodecLSTM):
        lstm = module.lstm
        if lstm.batch_first or lstm.bidirectional or lstm.proj_size:
            raise Unsupported("EnCodec's LSTM is expected unidirectional, time-first, without projection")
        return LstmSpec.from_lstm(lstm)
    if isinstance(module, EncodecResnetBlock):
        shortcut = () if isinstance(module.shortcut, torch.nn.Identity) else (_spec(module.shortcut, config),)
        return ResidualSpec(tuple(_spec(layer, config) for layer in module.block), shortcut)
    if isinstance(module, EncodecConv1d | EncodecConvTranspose1d) and module.norm_type != "weight_norm":
        # Group norm over the whole time axis: a sample depends on the whole sequence.
        raise Unsupported(f"EnCodec with {module.norm_type} cannot be decoded as a stream")
    if isinstance(module, EncodecConv1d):
        conv = module.conv
        if conv.stride[0] != 1 or module.pad_mode == "circular":
            raise Unsupported(f"EnCodec decoder convolution with stride {conv.stride[0]}, padding {module.pad_mode!r}")
        span = (conv.kernel_size[0] - 1) * conv.dilation[0]
        # As EncodecConv1d.forward: all padding left if causal, else the odd sample on the left.
        right = 0 if module.causal else span // 2
        return ConvSpec(conv.weight.detach().clone(), _bias(conv), conv.dilation[0], span - right, right,
                        module.pad_mode)
    if isinstance(module, EncodecConvTranspose1d):
        conv = module.conv
        stride, total = conv.stride[0], conv.kernel_size[0] - conv.stride[0]
        # As EncodecConvTranspose1d.forward: causal trims trim_right_ratio of it on the right.
        right = math.ceil(total * module.trim_right_ratio) if module.causal else total // 2
        return ConvTransposeSpec.from_weight(conv.weight.detach(), _bias(conv), stride, total - right, right)
    raise Unsupported(f"no streaming decode for EnCodec layer {type(module).__name__}")


def _bias(conv: torch.nn.Module) -> torch.Tensor | None:
    return None if conv.bias is None else conv.bias.detach()


class EncodecStream:
    """One stream: codes `[B, quantizers, n]` in, audio `[B, audio_channels, m]` out, in order.

    `B` is fixed at creation (a stereo MusicGen decodes its two channels as a batch of two).
    """

    def __init__(self, plan: DecoderPlan, batch: int) -> None:
        self.plan = plan
        self.batch = batch
        self.chain = Chain(plan.layers, plan.like, batch, plan.embedding_channels)
        self.frames = 0  # codes pushed
        self.samples = 0  # audio returned
        self.finished = False

    @torch.inference_mode()
    def push(self, codes: torch.Tensor) -> torch.Tensor:
        """Decode new frames; return the audio they make final (possibly none)."""
        if self.finished:
            raise ValueError("push after the end of the stream")
        if codes.shape[-1] == 0:
            return self.chain.empty()
        embeddings = self.plan.quantizer.decode(codes.transpose(0, 1))  # [B, D, n], as EncodecModel._decode_frame
        audio = self.chain.push(embeddings)
        self.frames += codes.shape[-1]
        self.samples += audio.shape[-1]
        return audio

    @torch.inference_mode()
    def push_context(self, codes: torch.Tensor) -> None:
        """Start a fresh stream with frames whose audio nobody wants (a continuation's prompt).

        The state after them is what `push` would leave, at a fraction of the cost: the layers up
        to the LSTM, whose state remembers everything, run over every frame; the layers after it,
        whose memory is about a frame (the first transposed convolution's overlap, then a few
        samples each), run over the last `CONTEXT_TAIL_FRAMES` only. Their first outputs there lack
        the left context and are dropped with the rest, so the next `push` goes on exactly.
        """
        if self.frames or self.finished:
            raise ValueError("context goes first, into a fresh stream")
        if codes.shape[-1] == 0:
            return
        chain = self.chain
        head_end = 1 + max((i for i, stage in enumerate(chain.stages) if isinstance(stage, Lstm)), default=-1)
        x, layout = chain.push_stages(self.plan.quantizer.decode(codes.transpose(0, 1)), CHANNELS, 0, head_end)
        x = to_layout(x, layout, CHANNELS)
        x = x[..., max(0, x.shape[-1] - CONTEXT_TAIL_FRAMES):]
        chain.push_stages(x, CHANNELS, head_end, len(chain.stages))
        self.frames = codes.shape[-1]
        self.samples = self.final_samples(self.frames)

    @torch.inference_mode()
    def flush(self) -> torch.Tensor:
        """End of the stream: the held-back audio, the right edge padded as in a one-shot decode."""
        if self.finished:
            return self.chain.empty()
        audio = self.chain.flush()
        self.finished = True
        self.samples += audio.shape[-1]
        return audio

    def final_samples(self, frames: int) -> int:
        """Audio samples final once `frames` frames have been pushed (before the flush)."""
        return self.chain.final_outputs(frames)

    def state(self) -> State:
        """Every tensor and position the stream carries, as host copies (a few hundred kB)."""
        state = {f"layers.{k}": v.detach().to("cpu", copy=True) for k, v in self.chain.state().items()}
        for name in ("frames", "samples", "finished"):
            state[name] = torch.tensor(int(getattr(self, name)), dtype=torch.int64)
        return state

    def load_state(self, state: State) -> None:
        """Continue from `state()` (checked by the caller against a fresh stream's)."""
        device = self.plan.like.device
        self.chain.load_state({k[len("layers."):]: v.to(device) for k, v in state.items() if k.startswith("layers.")})
        self.frames, self.samples = int(state["frames"]), int(state["samples"])
        self.finished = bool(state["finished"])
