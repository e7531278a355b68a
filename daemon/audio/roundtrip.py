"""DAW round trips: a continuation written back at the region's rate, width and sample format.

A producer sends a region and drops the result onto the timeline, so the output keeps the
region's sample rate and channel count (the model's rate exists only inside riffd), and with
`include_prompt` it is the region itself, bit for bit, followed by the continuation placed on
the region's timeline to the sample. No torch here: the CLI uses it on the client side.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from daemon.audio.io import DEFAULT_MAX_INPUT_S, parse_subtype, read_audio, write_audio
from daemon.audio.resample import convert_channels, resample
from daemon.audio.types import Audio
from protocol.errors import BadAudio, InvalidArgument

_FORMATS = {".wav": "WAV", ".flac": "FLAC"}


@dataclass(frozen=True)
class Region:
    """A region as its file holds it.

    `exact` is float64 `[channels, frames]`: every sample format libsndfile reads (PCM 8 to 32
    bit, float, double) survives float64 unchanged, so writing it back with `subtype` gives the
    same samples. `audio` is the float32 copy that goes to the model.
    """

    exact: np.ndarray
    sample_rate: int
    subtype: str

    @property
    def audio(self) -> Audio:
        return Audio(self.exact.astype(np.float32), self.sample_rate)

    @property
    def channels(self) -> int:
        return int(self.exact.shape[0])

    @property
    def frames(self) -> int:
        return int(self.exact.shape[1])


def read_region(path: str | os.PathLike, *, max_duration_s: float = DEFAULT_MAX_INPUT_S) -> Region:
    """Read `path` exactly; BadAudio says what is wrong with it (same checks as `read_audio`)."""
    checked = read_audio(path, max_duration_s=max_duration_s)  # validation and its messages, once
    try:
        subtype = sf.info(str(path)).subtype
        exact, _ = sf.read(str(path), dtype="float64", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise BadAudio(f"cannot decode audio file {path}: {exc}") from exc
    return Region(np.ascontiguousarray(exact.T), checked.sample_rate, subtype)


#: What a client asks the model for beyond a take's duration: the model's round(d x 32000) samples
#: can resample to one fewer than the region's round(d x 48000), which would end the take on a zero
#: (and a resampler's last samples lean on the silence past the end). The excess is cut in placing.
MODEL_MARGIN_S = 0.005


def model_duration_s(duration_s: float) -> float:
    """The duration to request for a take of `duration_s` at the region's rate (write_round_trip cuts it)."""
    return duration_s + MODEL_MARGIN_S


def place_continuation(
    continuation: Audio, region: Region, *, frames: int, start_offset_s: float | None = None
) -> np.ndarray:
    """The continuation at the region's rate and width, starting exactly at the region's end.

    `continuation` is the model's new audio `[C, T]` at its rate; `start_offset_s` is where its
    first sample sits on the region's timeline (None: at the region's end). When it starts
    before the end (the model took the prompt in whole codec frames) the overlap is dropped;
    when after, the gap is silent. Returns float64 `[region.channels, frames]`.
    """
    samples = continuation.samples
    if region.channels < continuation.channels:
        samples = convert_channels(samples, region.channels)  # mix down before the costlier resampling
    samples = resample(samples, continuation.sample_rate, region.sample_rate)
    samples = convert_channels(samples, region.channels).astype(np.float64)
    region_end_s = region.frames / region.sample_rate
    # Rates that divide into the codec's frame (44.1, 48, 88.2, 96 kHz...) make this an integer.
    skip = 0 if start_offset_s is None else round((region_end_s - start_offset_s) * region.sample_rate)
    if skip >= 0:
        samples = samples[:, skip:]
    else:
        samples = np.concatenate([np.zeros((region.channels, -skip)), samples], axis=1)
    placed = np.zeros((region.channels, frames))
    usable = min(frames, samples.shape[1])
    placed[:, :usable] = samples[:, :usable]
    return placed


def write_round_trip(
    path: str | os.PathLike,
    region: Region,
    continuation: Audio,
    *,
    duration_s: float,
    include_prompt: bool = False,
    start_offset_s: float | None = None,
    subtype: str | None = None,
) -> Path:
    """Write the continuation (after the region itself with `include_prompt`) at the region's rate.

    The file is `duration_s` of new audio long (plus the region), in the region's sample
    format unless `subtype` (a bit depth or soundfile subtype) says otherwise or the output format
    cannot hold it (then the format's default); with `include_prompt` the format is always the
    region's, or its samples would not be the same (a region in a codec's format, MP3 or Ogg:
    its decoded samples, as float WAV).
    """
    chosen = round_trip_subtype(path, region, include_prompt=include_prompt, subtype=subtype)
    new_frames = int(np.floor(duration_s * region.sample_rate + 0.5))
    placed = place_continuation(continuation, region, frames=new_frames, start_offset_s=start_offset_s)
    samples = np.concatenate([region.exact, placed], axis=1) if include_prompt else placed
    return write_audio(path, samples, region.sample_rate, subtype=chosen)


def round_trip_subtype(path: str | os.PathLike, region: Region, *, include_prompt: bool,
                       subtype: str | None = None) -> str | None:
    """The subtype `write_round_trip` writes `path` in (None: write_audio's default for its format);
    raises InvalidArgument for a file it would refuse, so a client can ask before a job runs."""
    path = Path(path)
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InvalidArgument(f"output {path} must end in .wav or .flac")
    if subtype is None:
        return _subtype_for(region.subtype, fmt, include_prompt=include_prompt)
    if include_prompt and parse_subtype(subtype, fmt) != region.subtype:
        raise InvalidArgument(f"--include-prompt keeps the region's format ({region.subtype}); "
                              f"a different bit depth would change its samples")
    parse_subtype(subtype, fmt)  # a bit depth the format has
    return subtype


#: Sample formats a file holds its samples in as they are (not a codec's: MP3, Vorbis, Opus...).
_PLAIN_SUBTYPES = ("PCM_S8", "PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE")


def _subtype_for(region_subtype: str, fmt: str, *, include_prompt: bool) -> str | None:
    """The region's subtype when `fmt` can hold it (a 16-bit WAV region gives a 16-bit FLAC...);
    else the format's default (None: write_audio's float WAV, 24-bit FLAC), unless the region's own
    samples must survive (`include_prompt`): a decoded MP3 or Ogg region survives in a float WAV."""
    if region_subtype in _PLAIN_SUBTYPES and sf.check_format(fmt, region_subtype):
        return region_subtype
    if not include_prompt:
        return None
    if fmt == "WAV":
        return "FLOAT"  # the decoder's float samples, exactly
    raise InvalidArgument(f"{fmt} cannot store the region's {region_subtype} samples unchanged, as "
                          "--include-prompt would: write a .wav")
