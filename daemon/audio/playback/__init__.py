"""Playback on the daemon's sound card: gapless per-job voices mixed into one PortAudio stream."""

from daemon.audio.playback.config import PlaybackConfig
from daemon.audio.playback.device import PlaybackUnavailable
from daemon.audio.playback.player import PlaybackStatus, Player, open_player
from daemon.audio.playback.voice import Voice

__all__ = ["PlaybackConfig", "PlaybackStatus", "PlaybackUnavailable", "Player", "Voice", "open_player"]
