"""The daemon's playback sink: a job's chunks go to a voice of the shared Player.

Plugged into the daemon through its sink seam (`daemon.sinks.base.SinkFactory`): the factory is
asked once per job and answers with a sink only when the job is to be played.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

import numpy as np

from daemon.audio.playback.config import PlaybackConfig
from daemon.audio.playback.device import PlaybackUnavailable
from daemon.audio.playback.player import PlaybackStatus, Player
from daemon.audio.playback.voice import Voice
from daemon.audio.types import AudioChunk
from daemon.tempo.timeline import Timeline

if TYPE_CHECKING:
    from daemon.jobs import Job

log = logging.getLogger(__name__)

#: Ends the message of a request refused because it asked to play where the sound card is off.
UNHEARD_ADVICE = "send the request without play to render it unheard"


class PlaybackSink:
    """Hands one job's chunks to its voice; runs on the worker thread and never waits on the sound card."""

    def __init__(self, voice: Voice, *, loop: bool = False) -> None:
        self._voice = voice
        # A loop (issue 15) is handed over whole when the job finishes, to repeat until cancelled.
        self._loop_blocks: list[np.ndarray] | None = [] if loop else None

    @property
    def voice(self) -> Voice:
        return self._voice

    def write(self, chunk: AudioChunk) -> str | None:
        if chunk.stage != "final":
            return None  # a Jukebox preview: the voice plays the job's one audio stream
        if chunk.beat is not None and self._voice.launch_beat is None and chunk.offset_samples == 0:
            self._voice.launch_at(chunk.beat)  # before its audio: the voice must not start on its own
        if self._loop_blocks is not None:
            self._loop_blocks.append(np.array(chunk.audio, dtype=np.float32, copy=True))
        else:
            self._voice.push(chunk.audio)
        return None

    def finish(self) -> str | None:
        if self._loop_blocks:
            self._voice.loop(np.concatenate(self._loop_blocks, axis=1))
            return None
        self._voice.finish()  # what is buffered plays out after the job's done event
        return None

    def abort(self) -> None:
        self._voice.cancel()  # fade out, no click


class PlaybackSinkFactory:
    """Gives a PlaybackSink to every job that is to be played.

    A request's `play` (True/False) wins over `play_by_default` (`riffd serve --play`); its
    `gain` (linear, default 1) sets the job's level in the mix. The sound card is opened at
    `start()` when playing by default, else on the first job that asks. If it cannot be opened,
    one message says why and playback stays off: a job played only by default renders as usual
    (the daemon's operator chose --play; `status` says `playback: off`), but a job whose request
    asked to play ends with PlaybackUnavailable before any audio, so the performer who asked to
    hear it is told. Such a request first tries the sound card again: one started since (a JACK
    server, a card plugged in) is found.
    """

    def __init__(self, config: PlaybackConfig, *, play_by_default: bool = False, player: Player | None = None,
                 timeline: Timeline | None = None) -> None:
        config.validate()
        self._timeline = timeline
        self.config = config
        self.play_by_default = play_by_default
        self._player = player
        self._tried = player is not None
        self._failure = ""  # why the sound card could not be opened, the last time it was tried
        self._owns_player = player is None  # a player handed in is closed by whoever opened it
        self._open_lock = threading.Lock()  # jobs of several workers may ask at once

    def follow(self, timeline: Timeline) -> None:
        """Launch voices on `timeline` (the daemon's), unless this factory was given one; before `start`."""
        if self._timeline is None and self._player is None:
            self._timeline = timeline

    def start(self) -> None:
        """Open the sound card now when every job is to be played, so the message comes at startup."""
        if self.play_by_default:
            self._ensure_player()

    def __call__(self, job: Job, sample_rate: int, channels: int) -> PlaybackSink | None:
        request = job.request
        if not (self.play_by_default if request.play is None else request.play):
            return None
        asked = request.play is True
        player = self._ensure_player(retry=asked)
        if player is None:
            if asked:
                raise PlaybackUnavailable(f"the daemon's sound card is off ({self._failure}): {UNHEARD_ADVICE}")
            return None
        try:
            voice = player.add_voice(job.id, sample_rate, channels, gain=1.0 if request.gain is None else request.gain)
        except PlaybackUnavailable as exc:
            if asked:
                raise PlaybackUnavailable(f"{exc.message}: {UNHEARD_ADVICE}") from exc
            # The sound card went away: a job played only by default still renders, it just is not heard.
            log.warning("job %s not played: %s", job.id, exc)
            return None
        return PlaybackSink(voice, loop=bool(getattr(request, "loop", False)))

    @property
    def player(self) -> Player | None:
        """The open player, or None while playback is off (or not yet asked for)."""
        return self._player

    def cancel(self, job_id: str) -> bool:
        """Fade out a job that is still sounding after it finished rendering."""
        return self._player is not None and self._player.cancel(job_id)

    def status(self) -> PlaybackStatus | None:
        """The player's state, or None while playback is off."""
        return None if self._player is None else self._player.status()

    def close(self) -> None:
        """Fade out and close the player this factory opened."""
        if self._player is not None and self._owns_player:
            self._player.close()

    def _ensure_player(self, *, retry: bool = False) -> Player | None:
        """The open player, opening the sound card on the first call (again with `retry` while it is off)."""
        with self._open_lock:
            if self._player is None and (retry or not self._tried):
                again, self._tried = self._tried, True
                try:
                    # Tried again, PortAudio lists its devices anew (none of ours is open): a card
                    # plugged in or a JACK server started since is seen.
                    self._player = Player.open(self.config, self._timeline, fresh=again)
                except PlaybackUnavailable as exc:
                    self._failure = exc.message
                    log.warning("playback is off: %s", exc)
            return self._player
