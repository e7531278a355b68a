"""Codes to audio chunks while they are generated: MusicGen's codes through a stateful EnCodec
stream (encodec_stream.py), cut into chunks on a fixed schedule.

Each frame is decoded once. A chunk is decoded when the frames its audio needs exist: its own
and the decoder's right lookahead (2402 samples, just under 4 frames, for EnCodec 32 kHz).
Chunks start small, so the first sound comes fast, and double up to `chunk_frames`, so a client
that plays at once is not starved while the engine builds its lead. The decode boundaries
follow from the schedule alone, never from how codes were pushed, so a stream restored from a
snapshot computes exactly what the uninterrupted one would.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from daemon.models.musicgen.codec import to_numpy
from daemon.models.musicgen.encodec_stages import LstmSpec
from daemon.models.musicgen.encodec_stream import DecoderPlan, EncodecStream
from daemon.models.musicgen.loader import MusicgenBundle
from protocol.errors import InvalidArgument

#: Snapshot layout version: a snapshot says which one it is, and others are refused. 2: SEANet's
#: residual units carry one buffer of raw inputs (encodec_stages.ResidualUnit), not four stages' state.
#: 3: transposed convolutions carry their last input (`last`), not the partial sums of the next block.
SNAPSHOT_VERSION = 3


@dataclass(frozen=True)
class StreamSettings:
    """Chunking of streamed audio (frames: codec frames, 20 ms at 50 Hz)."""

    # Audio of the first chunk. It waits for its frames, the decoder's lookahead (4 frames) and
    # the delay pattern's ramp (3 steps for 4 codebooks): 1 + 4 + 3 = 8 steps, 160 ms of decoding
    # at real time, so that with the prefill and one small decode the first sound is out within
    # 0.25 s wherever the engine keeps up with real time.
    first_chunk_frames: int = 1
    # The largest chunk: chunks double from the first one up to it. Larger means fewer decoder
    # calls (each costs a fixed ~1 ms of layer calls beside its per-frame work).
    chunk_frames: int = 25

    def validate(self) -> StreamSettings:
        for name in ("first_chunk_frames", "chunk_frames"):
            if getattr(self, name) < 1:
                raise InvalidArgument(f"{name} must be at least 1, got {getattr(self, name)}")
        return self


@dataclass(frozen=True, eq=False)
class MusicgenCodec:
    """A checkpoint's codec as streams need it: read once per loaded model, shared by its streams."""

    plan: DecoderPlan
    num_codebooks: int  # the decoder's, both channels together for stereo (interleaved L, R, L, R...)
    audio_channels: int
    sample_rate: int
    hop_length: int
    lookahead_samples: int  # audio a stream holds back until later frames (or the end) exist

    @classmethod
    def for_bundle(cls, bundle: MusicgenBundle) -> MusicgenCodec:
        return cls.for_codec(bundle.model.audio_encoder, num_codebooks=bundle.num_codebooks,
                             audio_channels=bundle.audio_channels)

    @classmethod
    def for_codec(cls, codec: torch.nn.Module, *, num_codebooks: int, audio_channels: int) -> MusicgenCodec:
        """`codec` a transformers EncodecModel; MusicGen codes of `num_codebooks` for `audio_channels`."""
        plan = DecoderPlan.from_model(codec)
        probe = EncodecStream(plan, 1)
        frames = 64  # well past the left edge, where every frame adds one hop
        return cls(plan, num_codebooks, audio_channels, int(codec.config.sampling_rate), plan.hop_length,
                   frames * plan.hop_length - probe.final_samples(frames))

    def with_bfloat16_lstm(self) -> MusicgenCodec:
        """The same codec with its LSTM's per-frame recurrent products on bfloat16 weights
        (`LstmSpec.with_bfloat16_recurrence`): for approximate engines, at >= 60 dB of the float32
        stream (90 dB measured on random/musicgen-small's codec; tests/musicgen/test_streaming_codec.py)."""
        layers = tuple(layer.with_bfloat16_recurrence() if isinstance(layer, LstmSpec) else layer
                       for layer in self.plan.layers)
        return dataclasses.replace(self, plan=dataclasses.replace(self.plan, layers=layers))

    def with_int8_lstm(self) -> MusicgenCodec:
        """The same codec with its LSTM's per-frame recurrent products on int8 weights
        (`LstmSpec.with_int8_recurrence`, bfloat16 where riffd's int8 kernel does not run): for
        approximate engines, at >= 60 dB of the float32 stream (tests/musicgen/test_streaming_codec.py)."""
        layers = tuple(layer.with_int8_recurrence() if isinstance(layer, LstmSpec) else layer for layer in self.plan.layers)
        return dataclasses.replace(self, plan=dataclasses.replace(self.plan, layers=layers))

    def frames_for(self, samples: int) -> int:
        """Frames a stream needs before its audio up to `samples` is final."""
        frames = -(-(samples + self.lookahead_samples) // self.hop_length)
        return max(0, frames)


class CodecStream:
    """Frame-aligned codes `[1, K, n]` in, as they come; contiguous audio blocks `[C, samples]` out.

    Positions are in samples from the first code pushed (the prompt's, when continuing audio);
    audio before `start_sample` is decoded (it is the next audio's left context) but not given
    out. `total_frames` None is an endless stream (a jam): `finish` ends it.
    """

    def __init__(self, codec: MusicgenCodec | MusicgenBundle, settings: StreamSettings = StreamSettings(), *,
                 total_frames: int | None = None, start_sample: int = 0) -> None:
        self.codec = codec if isinstance(codec, MusicgenCodec) else MusicgenCodec.for_bundle(codec)
        self.settings = settings.validate()
        if total_frames is not None and total_frames < 0 or start_sample < 0:
            raise ValueError(f"total_frames {total_frames} and start_sample {start_sample} must be >= 0")
        self.total_frames = total_frames
        self.start_sample = start_sample
        self._stream = EncodecStream(self.codec.plan, self.codec.audio_channels)
        self._pending = self._no_codes()  # [1, K, n] pushed, not yet decoded
        self._held = np.zeros((self.codec.audio_channels, 0), np.float32)  # decoded audio from _emitted on
        self._emitted = start_sample  # first sample not yet handed out
        self._chunk_end = start_sample + self.settings.first_chunk_frames * self.codec.hop_length

    @property
    def frames(self) -> int:
        """Frames pushed so far."""
        return self._stream.frames + self._pending.shape[-1]

    @property
    def emitted_samples(self) -> int:
        """End of the audio handed out so far, in samples from the first code."""
        return self._emitted

    @property
    def finished(self) -> bool:
        return self._stream.finished

    def push(self, codes: torch.Tensor) -> list[np.ndarray]:
        """Add frames `[1, K, n]`; return the blocks `[C, samples]` that are now final, in order.

        With `total_frames` known, the push that completes them returns everything left.
        """
        if self.finished:
            raise ValueError("push after the stream was finished")
        if codes.ndim != 3 or codes.shape[:2] != (1, self.codec.num_codebooks):
            raise ValueError(f"codes must be [1, {self.codec.num_codebooks}, frames], got {tuple(codes.shape)}")
        if self.total_frames is not None and self.frames + codes.shape[-1] > self.total_frames:
            raise ValueError(f"pushed {self.frames + codes.shape[-1]} frames, more than the {self.total_frames} announced")
        self._pending = torch.cat([self._pending, codes.to(self._pending.device)], dim=-1)
        blocks = []
        while self.frames >= self.codec.frames_for(self._chunk_end):
            self._decode(self.codec.frames_for(self._chunk_end))
            blocks.append(self._take(self._chunk_end))
        if self.frames == self.total_frames:
            blocks += self._flush()
        return blocks

    def decodes(self, frames: int) -> bool:
        """Whether pushing `frames` more frames runs the codec (some audio becomes final)."""
        pushed = self.frames + frames
        return pushed >= self.codec.frames_for(self._chunk_end) or pushed == self.total_frames

    def finish(self) -> list[np.ndarray]:
        """End the stream (an endless one whenever asked; a counted one once every frame is in):
        the audio still held back, in chunks."""
        if self.total_frames is not None and self.frames != self.total_frames:
            raise ValueError(f"finish after {self.frames} of {self.total_frames} frames")
        return [] if self.finished else self._flush()

    # -- decoding ----------------------------------------------------------------------------

    def _no_codes(self) -> torch.Tensor:
        return torch.zeros((1, self.codec.num_codebooks, 0), dtype=torch.long, device=self.codec.plan.like.device)

    def _decode(self, up_to_frame: int) -> None:
        """Feed the pending frames up to `up_to_frame` to the codec; hold the audio that comes out."""
        n = up_to_frame - self._stream.frames
        codes, self._pending = self._pending[..., :n], self._pending[..., n:]
        if self._stream.frames == 0 and self.start_sample:
            # The frames whose audio all lies before start_sample are only context: skip their audio.
            silent = min(n, (self.start_sample + self.codec.lookahead_samples) // self.codec.hop_length)
            self._stream.push_context(self._per_channel(codes[..., :silent]))
            codes = codes[..., silent:]
        self._keep(self._stream.push(self._per_channel(codes)))

    def _per_channel(self, codes: torch.Tensor) -> torch.Tensor:
        """`[1, K, n]` to `[channels, K / channels, n]`: stereo codebooks alternate left, right."""
        channels = self.codec.audio_channels
        return codes[0].reshape(self.codec.num_codebooks // channels, channels, codes.shape[-1]).transpose(0, 1)

    def _keep(self, audio: torch.Tensor) -> None:
        """Hold `[channels, 1, n]` fresh audio, minus what lies before `start_sample`."""
        fresh = to_numpy(audio[:, 0])
        end = self._stream.samples
        before = max(0, self._emitted + self._held.shape[1] - (end - fresh.shape[1]))
        self._held = np.concatenate([self._held, fresh[:, before:]], axis=1) if self._held.shape[1] else fresh[:, before:]

    def _take(self, end_sample: int) -> np.ndarray:
        """Hand out the held audio up to `end_sample`; the next chunk doubles, up to `chunk_frames`."""
        block, self._held = self._held[:, :end_sample - self._emitted], self._held[:, end_sample - self._emitted:]
        self._emitted += block.shape[1]
        hop, settings = self.codec.hop_length, self.settings
        done_frames = (self._emitted - self.start_sample) // hop
        next_frames = min(settings.chunk_frames, max(settings.first_chunk_frames, done_frames))
        self._chunk_end = self._emitted + next_frames * hop
        return np.ascontiguousarray(block)

    def _flush(self) -> list[np.ndarray]:
        """Decode everything left and end the stream; the rest of the audio on the same schedule."""
        self._decode(self.frames)
        self._keep(self._stream.flush())
        end = self._emitted + self._held.shape[1]
        blocks = []
        while self._emitted < end:
            blocks.append(self._take(min(self._chunk_end, end)))
        return blocks

    # -- snapshot ----------------------------------------------------------------------------

    def snapshot(self) -> dict[str, torch.Tensor]:
        """The whole stream state as named host tensors (safetensors can write them as they are):
        conv buffers, LSTM state, frames not yet decoded, audio not yet handed out, positions."""
        state = {f"codec.{k}": v for k, v in self._stream.state().items()}
        state.update(
            version=_scalar(SNAPSHOT_VERSION),
            shape=torch.tensor([self.codec.sample_rate, self.codec.hop_length, self.codec.num_codebooks,
                                self.codec.audio_channels], dtype=torch.int64),
            settings=torch.tensor([self.settings.first_chunk_frames, self.settings.chunk_frames], dtype=torch.int64),
            pending=self._pending.detach().to("cpu", copy=True),
            held=torch.from_numpy(self._held.copy()),
            total_frames=_scalar(-1 if self.total_frames is None else self.total_frames),
            start_sample=_scalar(self.start_sample),
            emitted=_scalar(self._emitted),
            chunk_end=_scalar(self._chunk_end),
        )
        return state

    @classmethod
    def restore(cls, codec: MusicgenCodec | MusicgenBundle, snapshot: dict[str, torch.Tensor]) -> CodecStream:
        """A decoder that goes on exactly where the one that took `snapshot` was (its settings too)."""
        codec = codec if isinstance(codec, MusicgenCodec) else MusicgenCodec.for_bundle(codec)
        _check_snapshot(codec, snapshot)
        first, chunk = (int(v) for v in snapshot["settings"])
        total = int(snapshot["total_frames"])
        decoder = cls(codec, StreamSettings(first, chunk), total_frames=None if total < 0 else total,
                      start_sample=int(snapshot["start_sample"]))
        _check_layers(decoder._stream.state(), snapshot)
        decoder._stream.load_state({k[len("codec."):]: v for k, v in snapshot.items() if k.startswith("codec.")})
        decoder._pending = snapshot["pending"].to(device=codec.plan.like.device, dtype=torch.long)
        decoder._held = snapshot["held"].numpy().astype(np.float32, copy=True)
        decoder._emitted, decoder._chunk_end = int(snapshot["emitted"]), int(snapshot["chunk_end"])
        return decoder


def _scalar(value: int) -> torch.Tensor:
    return torch.tensor(int(value), dtype=torch.int64)


_FIELDS = ("version", "shape", "settings", "pending", "held", "total_frames", "start_sample", "emitted", "chunk_end")


def _check_snapshot(codec: MusicgenCodec, snapshot: dict[str, torch.Tensor]) -> None:
    """Refuse a snapshot of another layout, codec or model, naming what does not fit."""
    if not isinstance(snapshot, dict) or any(not isinstance(v, torch.Tensor) for v in snapshot.values()):
        raise InvalidArgument("a codec stream snapshot is a dict of tensors")
    missing = [name for name in _FIELDS if name not in snapshot]
    if missing:
        raise InvalidArgument(f"not a codec stream snapshot: no {', '.join(missing)}")
    if int(snapshot["version"]) != SNAPSHOT_VERSION:
        raise InvalidArgument(f"codec stream snapshot version {int(snapshot['version'])}, this riffd reads {SNAPSHOT_VERSION}")
    expected = [codec.sample_rate, codec.hop_length, codec.num_codebooks, codec.audio_channels]
    if snapshot["shape"].tolist() != expected:
        raise InvalidArgument(f"codec stream snapshot of another model: rate, hop, codebooks, channels "
                              f"{snapshot['shape'].tolist()}, this model {expected}")
    if snapshot["settings"].numel() != 2 or min(snapshot["settings"].tolist()) < 1:
        raise InvalidArgument("codec stream snapshot with invalid chunk settings")
    pending, held = snapshot["pending"], snapshot["held"]
    if pending.ndim != 3 or tuple(pending.shape[:2]) != (1, codec.num_codebooks) or held.ndim != 2 \
            or held.shape[0] != codec.audio_channels:
        raise InvalidArgument("codec stream snapshot with pending codes or audio of the wrong shape")


def _check_layers(fresh: dict[str, torch.Tensor], snapshot: dict[str, torch.Tensor]) -> None:
    """The layer state must have every tensor a fresh stream has, with its shape and dtype (only
    the held inputs, `buffer` and `pending_*`, vary in length)."""
    layers = {k[len("codec."):]: v for k, v in snapshot.items() if k.startswith("codec.")}
    if layers.keys() != fresh.keys():
        odd = sorted(layers.keys() ^ fresh.keys())[:3]
        raise InvalidArgument(f"codec stream snapshot of another codec (layer state {', '.join(odd)} differs)")
    for name, tensor in fresh.items():
        got = layers[name]
        leaf = name.rsplit(".", 1)[-1]
        fixed = tensor.shape if leaf != "buffer" and not leaf.startswith("pending_") else tensor.shape[:-1]
        if got.dtype != tensor.dtype or got.ndim != tensor.ndim or got.shape[:len(fixed)] != fixed:
            raise InvalidArgument(f"codec stream snapshot of another codec: {name} is {got.dtype} "
                                  f"{tuple(got.shape)}, expected {tensor.dtype} {tuple(tensor.shape)}")
