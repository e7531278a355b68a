"""Benchmark: what conforming a take to the tempo costs, per second of audio, against a baseline.

Conform = librosa's beat tracking (onsets, beats, attacks, downbeat) + Rubber Band's offline
stretch (pylibrb, R3 engine); a jam's conform as it plays (daemon/tempo/stream_conform.py: Rubber
Band in real-time mode, a beat reading every 4 s) is timed on the same audio. Timed on a synthetic drum pattern (117 BPM, swung eighths, bass on
the one) at MusicGen's 32 kHz, conformed to 120 BPM. The baseline, timed interleaved in the same
run so the shared machine's load falls on both, is soxr resampling the same audio 32 -> 48 kHz
(what playback does to every take anyway). Prints per-stage medians and one JSON object last:
`conform_s_per_audio_s` (wall seconds per second of audio: below 1 is faster than real time),
its ratio to the baseline, and the conform's measured error.

It also times the first conform of a fresh process, cold (librosa's numba kernels compile
inside it) and after riffd's warm-up (daemon.tempo.warmup, what the daemon runs at start when it
has a tempo): `first_conform_cold_s`, `first_conform_warm_s`, `warmup_s`.

    python -m bench.conform [--seconds 16] [--repeats 5] [--no-first]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing
sys.path.insert(0, str(ROOT / "tests" / "tempo"))

from daemon.audio.resample import resample  # noqa: E402
from daemon.native.branches import cpu_flags, cpu_name  # noqa: E402
from daemon.audio.types import AudioChunk  # noqa: E402
from daemon.tempo.conform import conform, stretch, track_beats  # noqa: E402
from daemon.tempo.stream_conform import StreamConformer, conform_stream  # noqa: E402
from daemon.tempo.timeline import TimelineState  # noqa: E402
from drums import attacks, pattern  # type: ignore[import-not-found]  # noqa: E402 (tests/tempo, on the path above)

RATE = 32000



#: Run in a fresh interpreter: the first conform there, after riffd's warm-up if argv[1] is "warm".
_FIRST = """
import sys, time
sys.path[:0] = [{root!r}, {drums!r}]
from drums import pattern
warm_s = 0.0
if sys.argv[1] == "warm":
    from daemon.tempo.warmup import ConformWarmup
    w = ConformWarmup(); w.start(); w.wait(); warm_s = w.seconds
from daemon.tempo.conform import conform
bars = max(1, round({seconds} / (4 * 60 / 123)))
audio, _ = pattern(123.0, bars, 32000, swing=0.2, lead_in_s=0.3)
start = time.perf_counter()
conform(audio, 32000, 120.0, 4)
print(warm_s, time.perf_counter() - start)
"""


def first_conform(seconds: float) -> dict[str, float]:
    """The first conform in a fresh process, without and with the warm-up (wall seconds)."""
    import subprocess

    code = _FIRST.format(root=str(ROOT), drums=str(ROOT / "tests" / "tempo"), seconds=seconds)
    out: dict[str, float] = {}
    for mode in ("cold", "warm"):
        done = subprocess.run([sys.executable, "-c", code, mode], capture_output=True, text=True, check=True)
        warm_s, first_s = map(float, done.stdout.split())
        out[f"first_conform_{mode}_s"] = round(first_s, 3)
        if mode == "warm":
            out["warmup_s"] = round(warm_s, 3)
        print(f"{'first conform, ' + mode:>24}: {first_s:6.2f} s" + (f" (warm-up {warm_s:.2f} s)" if warm_s else ""))
    return out


def stream_conform(audio: np.ndarray) -> None:
    """The audio conformed as a jam's stream is: in the jam's 0.16 s chunks, to a 120 BPM timeline."""
    line = TimelineState(120.0, 0.0, 0.0)
    conformer = StreamConformer(RATE, audio.shape[0], state=lambda: line, launch_s=0.0, quantum=4, prompt_bpm=120.0)
    block = 8 * 640  # eight MusicGen frames
    chunks = (AudioChunk(i, s, audio[:, s : s + block], RATE) for i, s in enumerate(range(0, audio.shape[1], block)))
    for _ in conform_stream(chunks, conformer):
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=16.0, help="length of the drum take (default 16)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-first", dest="first", action="store_false",
                        help="skip the first-conform timings (two fresh processes)")
    args = parser.parse_args()
    first = first_conform(args.seconds) if args.first else {}
    bars = max(1, int(round(args.seconds / (4 * 60 / 117))))
    audio, _ = pattern(117.0, bars, RATE, swing=0.33, lead_in_s=0.137)
    seconds = audio.shape[1] / RATE
    conform(audio, RATE, 120.0, 4)  # warm-up: librosa's numba kernels compile on first use
    timings: dict[str, list[float]] = {"conform": [], "track": [], "stretch": [], "stream_conform": [],
                                       "baseline_resample": []}
    out = None
    for _ in range(args.repeats):
        for name in timings:
            start = time.perf_counter()
            if name == "conform":
                out = conform(audio, RATE, 120.0, 4)
            elif name == "track":
                track_beats(audio, RATE, 120.0, 4)
            elif name == "stretch":
                stretch(audio, RATE, 117.0 / 120.0)
            elif name == "stream_conform":
                stream_conform(audio)
            else:
                resample(audio, RATE, 48000)
            timings[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(values) for name, values in timings.items()}
    for name, value in medians.items():
        print(f"{name:>18}: {value * 1000:8.1f} ms for {seconds:.1f} s of audio ({value / seconds:.4f} s/s)")
    assert out is not None
    found = attacks(out.samples[0], RATE, threshold=0.3, hold_s=0.05)
    grid = np.arange(0.0, out.samples.shape[1] / RATE - 0.1, 0.5)
    errors = [abs(found[np.abs(found - at) < 0.04][0] - at) * 1000 for at in grid if np.any(np.abs(found - at) < 0.04)]
    result = {
        "bench": "conform",
        "cpu": cpu_name(),
        "isa": " ".join(sorted(cpu_flags() & {"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni"})),
        "audio_s": round(seconds, 3),
        "conform_s_per_audio_s": round(medians["conform"] / seconds, 5),
        "track_s_per_audio_s": round(medians["track"] / seconds, 5),
        "stretch_s_per_audio_s": round(medians["stretch"] / seconds, 5),
        # A jam's conform as it plays (Rubber Band real-time + a beat reading every 4 s): below 1 keeps up.
        "stream_conform_s_per_audio_s": round(medians["stream_conform"] / seconds, 5),
        "baseline_resample_s_per_audio_s": round(medians["baseline_resample"] / seconds, 5),
        "conform_vs_resample": round(medians["conform"] / medians["baseline_resample"], 2),
        "grid_error_ms_median": round(float(np.median(errors)), 3),
        "repeats": args.repeats,
        **first,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
