"""The sound card plays a job's final stage only: a Jukebox preview is for listeners, not the voice."""

from __future__ import annotations

import numpy as np

from daemon.audio.playback.sink import PlaybackSink
from daemon.audio.types import AudioChunk


class RecordingVoice:
    def __init__(self) -> None:
        self.pushed: list[np.ndarray] = []

    def push(self, samples: np.ndarray) -> None:
        self.pushed.append(samples)


def test_preview_chunks_are_not_played_and_final_ones_are() -> None:
    voice = RecordingVoice()
    sink = PlaybackSink(voice)  # type: ignore[arg-type]
    preview = AudioChunk(0, 0, np.ones((1, 4), np.float32), 44100, stage="preview")
    final = AudioChunk(0, 0, np.full((1, 4), 0.5, np.float32), 44100)
    assert sink.write(preview) is None and sink.write(final) is None
    assert len(voice.pushed) == 1 and voice.pushed[0] is final.audio
