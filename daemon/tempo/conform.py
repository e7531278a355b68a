"""Conform generated audio to a tempo: find its beats and downbeat, stretch them onto the grid.

Field libraries do the work: librosa's dynamic-programming beat tracker (Ellis 2007) finds the
beats, with the target tempo as its prior (MusicGen was asked for that tempo, so this settles the
octave errors a tracker is known for); librosa's onset backtracking on a 1 ms energy curve places
each beat on the start of its attack; Rubber Band (pylibrb, the library itself, offline R3 "finer" engine) stretches
at the ratio of the line fitted through the tracked attacks. (Its key-frame map, which would
also undo a wandering tempo, is not reachable through pylibrb 0.1.2: its binding refuses a dict.) The downbeat, which librosa does not track, is the beat phase whose beats carry
the most energy below 150 Hz (kick drums and bass notes mark the one).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

#: Beat-tracking hop: 8 ms at 32 kHz (the tracker's own resolution; attacks are placed finer below).
HOP = 256
#: Energy hop for placing each beat on its attack: 1 ms at 32 kHz.
FINE_HOP = 32
#: How far from the tracker's beat its attack may be found.
SNAP_S = 0.035
#: Fewer beats than this and the audio is too short (or too free) to read a tempo from.
MIN_BEATS = 4
#: The onset curve's mean at the tracked beats (spectral flux: dB a mel band, so independent of the
#: level) below which they are not beats. A steady tone's curve is numerical noise, whose median is
#: so small that its peaks stand out of it as far as drums do; measured at 32 kHz over 6.9 s: pure
#: tones 0.003-0.02, white noise 0.7, a pad's chord changes 1.7, the tests' drum patterns 14-16.
MIN_BEAT_FLUX = 1.0


@dataclass(frozen=True)
class BeatGrid:
    """Beats found in audio: their attacks, the tempo of the line fitted through them, the downbeat."""

    beat_times_s: np.ndarray  # [n] each beat's attack
    tempo_bpm: float  # of the line fitted through the beats
    downbeat_index: int  # which beat (into beat_times_s) is the first "one"
    confident: bool  # enough beats on a steady line to trust

    @property
    def downbeat_s(self) -> float:
        return float(self.beat_times_s[self.downbeat_index])


def track_beats(samples: np.ndarray, sample_rate: int, target_bpm: float, quantum: int, *,
                known_bpm: float | None = None) -> BeatGrid:
    """Beats of `samples` (float32 `[channels, frames]`), expected near `target_bpm`; `known_bpm`
    (a stream's tempo read before) skips librosa's tempo estimate, whose error over a few seconds
    makes its beats wander off the attacks."""
    import librosa

    mono = np.ascontiguousarray(samples.mean(axis=0), dtype=np.float32)
    envelope = librosa.onset.onset_strength(y=mono, sr=sample_rate, hop_length=HOP)
    _, beat_frames = librosa.beat.beat_track(onset_envelope=envelope, sr=sample_rate, hop_length=HOP,
                                             start_bpm=target_bpm, bpm=known_bpm, units="frames", trim=False)
    if len(beat_frames) < MIN_BEATS:
        return BeatGrid(librosa.frames_to_time(beat_frames, sr=sample_rate, hop_length=HOP), target_bpm, 0, False)
    # Each beat moved to the start of its attack: onsets on 1 ms frames (a short FFT keeps this
    # cheap), backtracked to the energy minimum before them; a beat with no onset near stays put.
    energy = librosa.feature.rms(y=mono, frame_length=4 * FINE_HOP, hop_length=FINE_HOP)[0]
    fine = librosa.onset.onset_strength(y=mono, sr=sample_rate, hop_length=FINE_HOP, n_fft=512, n_mels=64)
    onsets = librosa.onset.onset_detect(onset_envelope=fine, sr=sample_rate, hop_length=FINE_HOP, backtrack=True,
                                        energy=energy, units="time")
    coarse = librosa.frames_to_time(np.asarray(beat_frames), sr=sample_rate, hop_length=HOP)
    # A backtracked onset is the last quiet energy frame: the attack starts where that frame ends.
    attacks = np.asarray(onsets) + 2 * FINE_HOP / sample_rate
    beats = _snap(coarse, attacks, SNAP_S)
    # How far the beats stand out of the onset curve (a drone's "beats" are its noise floor), and
    # how strong they are (a steady tone's noise floor is tiny, so its peaks stand out of it).
    beat_flux = float(np.mean(envelope[np.asarray(beat_frames)]))
    salience = beat_flux / (float(np.median(envelope)) + 1e-9)
    index = np.arange(len(beats))
    line = np.polyfit(index, beats, 1)
    residual = beats - np.polyval(line, index)
    keep = np.abs(residual) < 0.08 * line[0]  # a beat placed on a neighbouring attack spoils the fit
    if keep.sum() >= MIN_BEATS:
        line = np.polyfit(index[keep], beats[keep], 1)
        beats = np.where(keep, beats, np.polyval(line, index))
    tempo_bpm = _fold_octave(60.0 / line[0], target_bpm)
    # Trusted when the beats are strong, stand out and most lie on one straight line (a drone has none of it).
    confident = bool(keep.mean() > 0.6 and salience > 6.0 and beat_flux >= MIN_BEAT_FLUX)
    return BeatGrid(beats, tempo_bpm, _downbeat(mono, sample_rate, beats, line[0], quantum), confident)


def _snap(beats: np.ndarray, onsets: np.ndarray, window_s: float) -> np.ndarray:
    """Each beat moved to the nearest onset within `window_s` (the tracker's frames are 8 ms coarse)."""
    if onsets.size == 0:
        return beats
    right = np.clip(np.searchsorted(onsets, beats), 0, onsets.size - 1)
    left = np.clip(right - 1, 0, onsets.size - 1)
    nearest = np.where(np.abs(beats - onsets[left]) <= np.abs(onsets[right] - beats), onsets[left], onsets[right])
    return np.where(np.abs(nearest - beats) <= window_s, nearest, beats)


def _fold_octave(bpm: float, target_bpm: float) -> float:
    """`bpm` doubled or halved to lie within a factor sqrt(2) of the target (an octave error undone)."""
    while bpm < target_bpm / math.sqrt(2):
        bpm *= 2
    while bpm > target_bpm * math.sqrt(2):
        bpm /= 2
    return bpm


def _downbeat(mono: np.ndarray, sample_rate: int, beats: np.ndarray, beat_s: float, quantum: int) -> int:
    """The first beat of the phase (mod `quantum`) whose beats carry the most energy below 150 Hz."""
    if quantum <= 1:
        return 0
    import scipy.signal

    low = scipy.signal.sosfilt(scipy.signal.butter(4, 150.0, fs=sample_rate, output="sos"), mono)
    span = max(1, int(beat_s * sample_rate / 2))  # the first half of each beat
    starts = np.clip(np.round(beats * sample_rate).astype(int), 0, len(low) - 1)
    energy = np.array([float(np.mean(low[s : s + span] ** 2)) for s in starts])
    scores = [energy[phase::quantum].mean() if energy[phase::quantum].size else 0.0 for phase in range(quantum)]
    return int(np.argmax(scores))


@dataclass(frozen=True)
class Conformed:
    """Audio on the grid: sample 0 is a downbeat, beat k at k * 60 / bpm seconds."""

    samples: np.ndarray  # float32 [channels, frames]
    source_bpm: float  # the tempo found in the generated audio
    ratio: float  # output duration / input duration
    confident: bool


def conform(samples: np.ndarray, sample_rate: int, target_bpm: float, quantum: int) -> Conformed:
    """Stretch `samples` so its beats fall on a `target_bpm` grid starting at its first downbeat."""
    from daemon.tempo.beat_process import BEATS  # here: that module imports this one

    started = time.perf_counter()
    grid = BEATS.track(samples, sample_rate, target_bpm, quantum)  # in a child process: librosa never holds our GIL
    if not grid.confident:
        log.info("conform: no steady beat found (%d beats); the audio is left at its own time", len(grid.beat_times_s))
        return Conformed(np.ascontiguousarray(samples, dtype=np.float32), target_bpm, 1.0, False)
    # A downbeat on the audio's first attack can lie a little before sample 0 (backtracked to the
    # energy minimum, or put on the fitted line): it starts the audio. Negative, it would index the tail.
    start = max(0, int(round(grid.downbeat_s * sample_rate)))
    body = samples[:, start:]
    ratio = grid.tempo_bpm / target_bpm
    stretched = stretch(body, sample_rate, ratio)
    log.info("conform: %.2f BPM found, stretched x%.4f to %.2f BPM, downbeat at %.3f s (%.2f s for %.1f s of audio)",
             grid.tempo_bpm, ratio, target_bpm, grid.downbeat_s, time.perf_counter() - started,
             samples.shape[1] / sample_rate)
    return Conformed(stretched, grid.tempo_bpm, ratio, True)


#: Frames handed to Rubber Band per call (larger blocks made its output wander from the ratio
#: by up to 20 ms over 16 s in offline mode here; 4096 keeps it within 2 ms).
BLOCK_FRAMES = 4096


def _take(audio: np.ndarray, start: int, count: int) -> np.ndarray:
    import pylibrb

    index = [slice(None), slice(None)]
    index[pylibrb.SAMPLES_AXIS] = slice(start, start + count)
    return np.ascontiguousarray(audio[tuple(index)])


def stretch(samples: np.ndarray, sample_rate: int, ratio: float) -> np.ndarray:
    """Rubber Band, offline and finer: `samples` `[channels, frames]` made `ratio` times as long."""
    import pylibrb

    channels, frames = samples.shape
    options = pylibrb.Option.PROCESS_OFFLINE | pylibrb.Option.ENGINE_FINER
    stretcher = pylibrb.RubberBandStretcher(sample_rate=sample_rate, channels=channels, options=options,
                                            initial_time_ratio=ratio)
    stretcher.set_expected_input_duration(frames)
    audio = np.ascontiguousarray(samples, dtype=np.float32)
    if pylibrb.SAMPLES_AXIS == 0:
        audio = np.ascontiguousarray(audio.T)
    block = min(frames, BLOCK_FRAMES)
    stretcher.set_max_process_size(block)
    for start in range(0, frames, block):
        stretcher.study(_take(audio, start, block), final=start + block >= frames)
    pieces = []
    for start in range(0, frames, block):
        stretcher.process(_take(audio, start, block), final=start + block >= frames)
        while stretcher.available() > 0:
            pieces.append(stretcher.retrieve_available())
    while not stretcher.is_done() and stretcher.available() > 0:
        pieces.append(stretcher.retrieve_available())
    out = np.concatenate(pieces, axis=pylibrb.SAMPLES_AXIS) if pieces else np.zeros((channels, 0), np.float32)
    if pylibrb.SAMPLES_AXIS == 0:
        out = out.T
    return np.ascontiguousarray(out, dtype=np.float32)
