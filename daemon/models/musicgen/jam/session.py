"""A jam on a resident MusicGen: start one from a prompt, resume one from a snapshot, capture one."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from daemon.models.musicgen.jam.decoding import EngineDecoder
from daemon.models.musicgen.jam.prompts import PromptEncoder, WeightedPrompts
from daemon.models.musicgen.jam.state import load_state, model_fingerprint, save_state
from daemon.models.musicgen.jam.stream import JamStream
from daemon.models.musicgen.jam.types import JamSampling, JamShape, JamState
from protocol.errors import BadSnapshot, InvalidArgument, Unsupported

if TYPE_CHECKING:
    from daemon.models.musicgen.backend import MusicGen


class JamHost:
    """What a MusicGen backend keeps for its jams: one prompt encoder (its cache shared by them)."""

    def __init__(self, musicgen: "MusicGen") -> None:
        if musicgen.engine is None:
            raise Unsupported("jams run on riffd's streaming engine; this model was loaded with the reference loop")
        if musicgen.bundle.is_melody:
            raise Unsupported(f"model {musicgen.model_id} conditions through a melody prefix, which cannot change "
                              "while it plays: jam with a text model (musicgen-small, -medium, -large, -stereo-*)")
        self.musicgen = musicgen
        self.decoder = EngineDecoder(musicgen.engine)
        self.encoder = PromptEncoder(musicgen.bundle)
        self._fingerprint: str | None = None
        self._lock = threading.Lock()

    def identity(self) -> dict[str, str]:
        """What a snapshot must have been taken with to resume exactly here."""
        with self._lock:
            if self._fingerprint is None:
                self._fingerprint = model_fingerprint(self.musicgen.bundle)
        return {"model": self.musicgen.model_id, "fingerprint": self._fingerprint, "engine": self.decoder.mode,
                "cache": self.decoder.cache_format}

    def start(self, prompt: str, sampling: JamSampling, *, seed: int, context_s: float,
              window_s: float | None) -> JamStream:
        bundle = self.musicgen.bundle
        window_frames = bundle.window_frames if window_s is None else round(window_s * bundle.frame_rate)
        context_frames = max(1, round(context_s * bundle.frame_rate))
        if window_s is None:
            # The model's window with a short context keeps the context shorter than the window.
            context_frames = min(context_frames, window_frames // 2)
        shape = JamShape(window_frames=window_frames, context_frames=context_frames)
        return JamStream(self.decoder, bundle, self.musicgen.codec, self.encoder, shape,
                         prompts=WeightedPrompts.of((prompt,)), sampling=sampling, seed=seed,
                         stream_settings=self.musicgen.stream_settings)

    def resume(self, path: Path) -> tuple[JamStream, int]:
        """The jam saved at `path`, and the offset (samples) of the original jam it goes on from."""
        state, offset = load_state(path, identity=self.identity())
        try:
            stream = JamStream.restore(self.decoder, self.musicgen.bundle, self.musicgen.codec, self.encoder, state)
        except (ValueError, RuntimeError, InvalidArgument) as exc:
            raise BadSnapshot(f"{path.name} does not fit this model's engine: {exc}") from None
        return stream, offset

    @staticmethod
    @torch.inference_mode()
    def capture(stream: JamStream) -> tuple[JamState, int]:
        """The stream's state now (a copy) and the offset it continues from."""
        return stream.state(), stream.emitted_samples

    @staticmethod
    def save(path: Path, state: JamState, *, identity: dict[str, str], offset_samples: int) -> None:
        """Write a captured state as a snapshot file (atomically)."""
        save_state(path, state, identity=identity, offset_samples=offset_samples)
