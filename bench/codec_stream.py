"""Benchmark: the stateful streaming EnCodec decode against the windowed one it replaced, same
codec, same codes, same run.

Decodes `--duration` seconds of random codes with the codec of `--model` (default
random/musicgen-small: EnCodec 32 kHz as in facebook/musicgen-small, random weights), fed one
frame at a time as the engine makes them, and reports wall seconds of decoding per second of
audio for:
- stateful: `CodecStream` with the default chunking (the daemon's path);
- windowed: the decode riffd used before, each 25-frame chunk (10 for the first) decoded again
  with 10 frames of left context and 4 of lookahead by transformers' `EncodecModel.decode`,
  with a 256-sample crossfade at each seam;
- one-shot: transformers' decode of the whole sequence at once (not a stream: the floor).
Each is run `--repeats` times, interleaved, keeping the best (this machine is shared). Also: the
first chunk's decode (its part of the time to first audio), the stateful audio against the
one-shot decode in dB, and the snapshot size. Prints a table, then one JSON object last.

`--stages`: the stateful decode's time per decoder layer (best of the repeats), each layer's
floating-point work and its rate against a large float32 matrix product's in the same run (the
practical floor of these cores); `--int8-lstm` as approximate engines run it (where riffd's int8 kernel runs),
`--bfloat16-lstm` as they ran it before (and where it does not).

    python -m bench.codec_stream [--model random/musicgen-small] [--duration 10] [--threads N]
        [--stages] [--int8-lstm | --bfloat16-lstm]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from bench.isa import add_cpu_arguments, apply_cpu_arguments
from daemon.models.musicgen.codec import decode_codes, to_numpy
from daemon.models.musicgen.encodec_stages import Conv, ConvTranspose, Lstm, Residual, ResidualUnit, Stage, time_dim
from daemon.models.musicgen.loader import MusicgenBundle, load_folder, pick_device
from daemon.models.musicgen.streaming_codec import CodecStream, MusicgenCodec, StreamSettings
from daemon.models.registry import default_cache_dir, resolve_folder
from daemon.native.branches import cpu_flags, cpu_name


def cpu_description() -> tuple[str, list[str]]:
    """The CPU's model name and the vector instruction sets that matter here."""
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "asimd", "asimddp")
    flags = cpu_flags()
    return cpu_name(), [flag for flag in wanted if flag in flags]


def stateful(codec: MusicgenCodec, codes: torch.Tensor) -> np.ndarray:
    stream = CodecStream(codec, StreamSettings(), total_frames=codes.shape[-1])
    blocks = []
    for frame in range(codes.shape[-1]):
        blocks += stream.push(codes[..., frame:frame + 1])
    return np.concatenate(blocks, axis=1)


def windowed(bundle: MusicgenBundle, codes: torch.Tensor, *, first: int = 10, chunk: int = 25, context: int = 10,
             lookahead: int = 4, fade: int = 256) -> np.ndarray:
    """The replaced decode: every chunk decoded again with context and lookahead, seams crossfaded."""
    hop, total = bundle.hop_length, codes.shape[-1]
    ramp = (np.arange(1, fade + 1, dtype=np.float32) / (fade + 1))[None]
    out, tail, emitted, size = [], None, 0, first
    while emitted < total * hop:
        end = min(emitted + size * hop + fade, total * hop)
        last = min(total, -(-end // hop) + lookahead)
        begin = max(0, emitted // hop - context)
        audio = to_numpy(decode_codes(bundle, codes[..., begin:last])[0])
        block = audio[:, emitted - begin * hop:end - begin * hop].copy()
        if tail is not None:
            block[:, :fade] = tail * (1 - ramp) + block[:, :fade] * ramp
        keep = block.shape[1] - fade if end < total * hop else block.shape[1]
        out.append(block[:, :keep])
        tail = block[:, keep:] if keep < block.shape[1] else None
        emitted += keep
        size = chunk
    return np.concatenate(out, axis=1)


def _flops(stage: Stage, x: torch.Tensor, y: torch.Tensor) -> int:
    """Multiply-adds times two a stage's push did, from its spec and the lengths in and out."""
    inputs = x.shape[time_dim(stage.takes)] * x.shape[0]  # an ANY stage's FLOPs are 0: its layout does not matter
    if isinstance(stage, Conv):
        return 2 * stage.spec.weight.numel() * y.shape[time_dim(stage.gives)] * y.shape[0]
    if isinstance(stage, ConvTranspose):
        return 2 * stage.spec.matrix.numel() * inputs
    if isinstance(stage, Lstm):
        spec = stage.spec
        per_step = sum(w.numel() for w in spec.weight_ih) + sum(w.numel() for w in spec.weight_hh)
        return 2 * per_step * inputs
    if isinstance(stage, Residual):
        convs = [s for chain in (stage.main, stage.shortcut) for s in chain.stages if isinstance(s, Conv)]
        return sum(2 * conv.spec.weight.numel() * inputs for conv in convs)
    if isinstance(stage, ResidualUnit):
        return sum(2 * conv.weight.numel() * inputs for conv in (stage.conv, stage.pointwise))
    return 0


def _time_pushes(stage: Stage, name: str, seconds: dict[str, float], flops: dict[str, int]) -> None:
    """Add up the seconds and FLOPs of `stage`'s pushes under `name`."""
    push = stage.push

    def timed_push(x: torch.Tensor) -> torch.Tensor:
        start = time.perf_counter()
        y = push(x)
        seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - start
        flops[name] = flops.get(name, 0) + _flops(stage, x, y)
        return y

    stage.push = timed_push  # type: ignore[method-assign]


def stage_profile(codec: MusicgenCodec, codes: torch.Tensor, repeats: int) -> list[dict[str, Any]]:
    """Per decoder layer of a stateful stream fed as the daemon feeds it: best seconds over `repeats`
    and floating-point operations (the same each run)."""
    best: dict[str, float] = {}
    flops: dict[str, int] = {}
    for _ in range(repeats + 1):  # the first run warms up
        stream = CodecStream(codec, StreamSettings(), total_frames=codes.shape[-1])
        seconds: dict[str, float] = {}
        flops.clear()
        for i, stage in enumerate(stream._stream.chain.stages):
            _time_pushes(stage, f"{i:2d} {type(stage).__name__}", seconds, flops)
        for frame in range(codes.shape[-1]):
            stream.push(codes[..., frame:frame + 1])
        for name, value in seconds.items():
            best[name] = min(value, best.get(name, math.inf))
    return [{"stage": name, "s": best[name], "flop": flops.get(name, 0)} for name in best]


def matmul_rate() -> float:
    """float32 FLOP/s of a large matrix product on torch's threads: what these cores reach at best."""
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    torch.mm(a, b)
    return 2 * 1024**3 / min(timed(lambda: torch.mm(a, b)) for _ in range(10))


def timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def snr_db(reference: np.ndarray, other: np.ndarray) -> float:
    error = float(((other - reference) ** 2).sum())
    return 10 * math.log10(float((reference ** 2).sum()) / max(error, 1e-30))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="random/musicgen-small")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of audio decoded per run")
    parser.add_argument("--repeats", type=int, default=3)
    add_cpu_arguments(parser, emulate=False)
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--stages", action="store_true", help="time each decoder layer against its FLOP floor")
    precision = parser.add_mutually_exclusive_group()
    precision.add_argument("--int8-lstm", action="store_true",
                           help="the LSTM's recurrence on int8 weights, as approximate engines run it")
    precision.add_argument("--bfloat16-lstm", action="store_true",
                           help="the LSTM's recurrence on bfloat16 weights, as approximate engines run it "
                                "where riffd's int8 kernel does not")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    apply_cpu_arguments(args, "bench.codec_stream")
    device = pick_device(args.device)
    folder = resolve_folder(args.model, cache_dir=args.cache_dir or default_cache_dir())
    bundle = load_folder(folder, model_id=args.model, device=device)
    codec = MusicgenCodec.for_bundle(bundle)
    if args.bfloat16_lstm:
        codec = codec.with_bfloat16_lstm()
    if args.int8_lstm:
        codec = codec.with_int8_lstm()
    frames = math.ceil(args.duration * bundle.frame_rate)
    audio_s = frames * bundle.hop_length / bundle.sample_rate
    codebook_size = bundle.model.audio_encoder.config.codebook_size
    codes = torch.randint(0, codebook_size, (1, bundle.num_codebooks, frames),
                          generator=torch.Generator().manual_seed(0)).to(device)
    cpu, isa = cpu_description()
    print(f"{args.model} codec on {device} ({cpu}; {', '.join(isa) or 'no listed vector extensions'}; "
          f"{torch.get_num_threads()} threads), {audio_s:g} s = {frames} frames, best of {args.repeats}")

    # Warm up each path once (first calls pick kernels), then interleave the timed runs.
    reference = to_numpy(decode_codes(bundle, codes)[0])
    streamed, old = stateful(codec, codes), windowed(bundle, codes)
    runs: dict[str, list[float]] = {"stateful": [], "windowed": [], "one_shot": []}
    for _ in range(args.repeats):
        runs["stateful"].append(timed(lambda: stateful(codec, codes)))
        runs["windowed"].append(timed(lambda: windowed(bundle, codes)))
        runs["one_shot"].append(timed(lambda: decode_codes(bundle, codes)))
    cost = {name: min(times) / audio_s for name, times in runs.items()}

    first_frames = codec.frames_for(StreamSettings().first_chunk_frames * bundle.hop_length)
    first_chunk_s = min(timed(lambda: CodecStream(codec).push(codes[..., :first_frames]))
                        for _ in range(args.repeats))
    stream = CodecStream(codec)
    stream.push(codes[..., :frames // 2])
    snapshot_bytes = sum(t.numel() * t.element_size() for t in stream.snapshot().values())

    for name, value in cost.items():
        print(f"{name:>9}: {value * 1000:7.1f} ms per second of audio "
              f"({cost['windowed'] / value:.2f}x the windowed decode's speed)")
    print(f"first chunk: {first_frames} frames decoded in {first_chunk_s * 1000:.1f} ms; stateful vs one-shot "
          f"{snr_db(reference, streamed):.1f} dB, windowed vs one-shot {snr_db(reference, old):.1f} dB; "
          f"snapshot {snapshot_bytes / 1024:.1f} KiB")
    summary = {
        "model": args.model,
        "device": str(device),
        "cpu": cpu,
        "isa": isa,
        "threads": torch.get_num_threads(),
        "audio_s": round(audio_s, 3),
        "stateful_s_per_audio_s": round(cost["stateful"], 4),
        "windowed_s_per_audio_s": round(cost["windowed"], 4),
        "one_shot_s_per_audio_s": round(cost["one_shot"], 4),
        "speedup_vs_windowed": round(cost["windowed"] / cost["stateful"], 3),
        "first_chunk_frames": first_frames,
        "first_chunk_decode_s": round(first_chunk_s, 4),
        "stateful_snr_db": round(snr_db(reference, streamed), 1),
        "windowed_snr_db": round(snr_db(reference, old), 1),
        "snapshot_bytes": snapshot_bytes,
    }
    if args.stages:
        rate = matmul_rate()
        stages = stage_profile(codec, codes, args.repeats)
        print(f"per layer (best of {args.repeats}; floor: a 1024^3 float32 product's {rate / 1e9:.0f} GFLOP/s here):")
        for entry in stages:
            floor_s = entry["flop"] / rate
            print(f"  {entry['stage']:<16} {entry['s'] / audio_s * 1000:6.1f} ms per s of audio, "
                  f"{entry['flop'] / audio_s / 1e9:5.2f} GFLOP, floor {floor_s / audio_s * 1000:5.1f} ms"
                  + (f" ({floor_s / entry['s']:.0%} of it)" if entry["flop"] else ""))
        summary["matmul_gflops"] = round(rate / 1e9, 1)
        summary["stages_ms_per_audio_s"] = {e["stage"].strip(): round(e["s"] / audio_s * 1000, 2) for e in stages}
        summary["stages_floor_ms_per_audio_s"] = {e["stage"].strip(): round(e["flop"] / rate / audio_s * 1000, 2)
                                                  for e in stages}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
