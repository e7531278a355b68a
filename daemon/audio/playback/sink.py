"""The daemon's playback sink: a job's chunks go to a voice of the shared Player.

Plugged into the daemon through its sink seam (`daemon.sinks.base.SinkFactory`): the factory is
asked once per job and answers with a sink only when the job is to be played.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from daemon.audio.playback.device import PlaybackUnavailable
from daemon.audio.playback.player import PlaybackStatus, Player
from daemon.audio.playback.voice import Voice
from daemon.audio.types import AudioChunk

if TYPE_CHECKING:
    from daemon.jobs import Job

log = logging.getLogger(__name__)


class PlaybackSink:
    """Hands one job's chunks to its voice; runs on the worker thread and never waits on the sound card."""

    def __init__(self, voice: Voice) -> None:
        self._voice = voice

    def write(self, chunk: AudioChunk) -> str | None:
        self._voice.push(chunk.audio)
        return None

    def finish(self) -> str | None:
        self._voice.finish()  # what is buffered plays out after the job's done event
        return None

    def abort(self) -> None:
        self._voice.cancel()  # fade out, no click


class PlaybackSinkFactory:
    """Gives a PlaybackSink to every job that asks to be played (or to all, with `play_by_default`).

    A request's `play` (True/False) wins over the daemon's default; its `gain` (linear, default 1)
    sets the job's level in the mix.
    """

    def __init__(self, player: Player, *, play_by_default: bool = False) -> None:
        self.player = player
        self.play_by_default = play_by_default

    def __call__(self, job: Job, sample_rate: int, channels: int) -> PlaybackSink | None:
        request = job.request
        play = getattr(request, "play", None)
        if not (self.play_by_default if play is None else play):
            return None
        gain = getattr(request, "gain", None)
        try:
            voice = self.player.add_voice(job.id, sample_rate, channels, gain=1.0 if gain is None else float(gain))
        except PlaybackUnavailable as exc:
            # The sound card went away: the job still renders, it just is not heard.
            log.warning("job %s not played: %s", job.id, exc)
            return None
        return PlaybackSink(voice)

    def cancel(self, job_id: str) -> bool:
        """Fade out a job that is still sounding after it finished rendering."""
        return self.player.cancel(job_id)

    def status(self) -> PlaybackStatus:
        return self.player.status()
