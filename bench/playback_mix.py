"""Benchmark: the cost of the playback callback, against a plain copy of the same block, in one run.

The audio callback must finish well inside one block's duration, every block. This times
`Mixer.render` (the callback's whole body) with 1..N voices sounding, against the cheapest
possible callback (copying a preallocated block into the output), interleaved so the shared
machine's load falls on both alike. Prints, per voice count, the median and 99th-percentile
render time, its ratio to the copy baseline and its share of the block's real-time budget,
then one JSON object as the last line. No sound card is needed.

    /tmp/venv/bin/python -m bench.playback_mix [--block 256] [--voices 1 4 8] [--blocks 4000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from daemon.audio.playback.mixer import Mixer  # noqa: E402
from daemon.audio.playback.voice import Voice  # noqa: E402

RATE = 48000


def make_voices(count: int, frames: int) -> list[Voice]:
    voices = []
    rng = np.random.default_rng(0)
    for index in range(count):
        voice = Voice(f"v{index}", 32000, 1, device_rate=RATE, device_channels=2, start_frames=1,
                      capacity_frames=frames + RATE, fade_frames=240, gain_ramp_frames=480, gain=0.5)
        voice.push((0.1 * rng.standard_normal((1, frames * 32000 // RATE + 64))).astype(np.float32))
        voice.feed()
        voice.set_gain(0.7)  # a glide in the first blocks, then steady gain
        voices.append(voice)
    return voices


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--block", type=int, default=256, help="frames per callback (JACK's period)")
    parser.add_argument("--voices", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--blocks", type=int, default=4000, help="callbacks timed per voice count")
    args = parser.parse_args()
    budget_s = args.block / RATE
    out = np.zeros((args.block, 2), np.float32)
    source = np.ones((args.block, 2), np.float32)
    results = {}
    print(f"block {args.block} frames = {budget_s * 1e3:.2f} ms of audio at {RATE} Hz")
    for count in args.voices:
        mixer = Mixer(2, lead_in_blocks=0)
        for voice in make_voices(count, args.block * args.blocks):
            mixer.add(voice)
        render_s, copy_s = [], []
        for _ in range(args.blocks):
            start = time.perf_counter()
            mixer.render(out)
            render_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            out[:] = source
            copy_s.append(time.perf_counter() - start)
        median, p99 = statistics.median(render_s), percentile(render_s, 99)
        baseline, baseline_p99 = statistics.median(copy_s), percentile(copy_s, 99)
        results[count] = {"median_us": median * 1e6, "p99_us": p99 * 1e6, "ratio_to_copy": median / baseline,
                          "copy_median_us": baseline * 1e6, "copy_p99_us": baseline_p99 * 1e6,
                          "budget_share_median": median / budget_s, "budget_share_p99": p99 / budget_s}
        print(f"{count:2d} voices: median {median * 1e6:7.1f} us, p99 {p99 * 1e6:7.1f} us, "
              f"{median / baseline:6.1f}x a block copy, {100 * median / budget_s:5.2f}% of the block's time "
              f"(p99 {100 * p99 / budget_s:5.2f}%); copy p99 {baseline_p99 * 1e6:.1f} us")
    print(json.dumps({"block_frames": args.block, "rate": RATE, "results": results}))


if __name__ == "__main__":
    main()
