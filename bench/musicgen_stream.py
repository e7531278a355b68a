"""Benchmark: MusicGen streaming engine against transformers' generate(), same weights, same run.

Measures, for one prompt (defaults: random/musicgen-small, guidance 3, top-k 250, 4 s):
transformers generate() decode steps per second (the baseline); the engine's steps per second
in each mode and the ratio to the baseline; time to the first audio chunk, real-time factor and
peak memory of each mode; the machine's memory-read bandwidth, the steps per second it allows
when every step reads all decoder weights once (the floor), and each mode's fraction of it.
The baseline runs before and after the engine and keeps its better run (the median interval of
generate()'s steps); an engine mode's rate is its decode steps over their own time inside the
streamed run (codec decodes and prefills left out, speculative bursts counted whole, as
stream()'s report measures them). float32+draft is speculative: it reads the float32 weights
once per several columns, so its rate can pass the one-read-per-step floor. The best mode is the
one `--engine auto` would pick from these figures. This machine is shared: `--threads 1` gives
the steadiest numbers. Prints a table, then one JSON object as the last line.

The default run is short (under 5 minutes on a 2-core machine): 2 s of audio, float32, bfloat16
and int8 (as int8dyn where riffd's kernels cannot run, as the daemon does). `--full` is the
whole sweep: 4 s, every mode `--engine auto` considers on this machine (int4 left out: it does
not keep 90 % agreement on random weights); `--modes all` measures every format, and a mode
that needs riffd's int8 kernels where they cannot run is measured as what the daemon runs
instead (int8 as int8dyn, +draft as float32), as the log says.

    python -m bench.musicgen_stream [--model random/musicgen-small] [--device cpu]
        [--duration 2] [--modes float32,float32+draft,bfloat16,int8,int8dyn | all] [--full] [--threads N]
        [--emulate avx2]
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import math
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from bench.isa import add_cpu_arguments, apply_cpu_arguments, isa_label
from daemon.backend import StreamReport
from daemon.cpu import this_cpu
from daemon.models.musicgen.agreement import compare
from daemon.models.musicgen.engine_choice import MIN_AGREEMENT, Calibration, ModeMeasurement, choose
from daemon.models.musicgen.engine_modes import offered_modes, runnable
from daemon.models.musicgen.conditioning import build_conditioning
from daemon.models.musicgen.delay import delay_steps
from daemon.models.musicgen.engine import MusicgenEngine
from daemon.models.musicgen.backend import MusicGen
from daemon.models.musicgen.loader import MusicgenBundle, load_folder, pick_device
from daemon.models.musicgen.options import WEIGHT_FORMATS, EngineOptions
from daemon.models.musicgen.streaming_codec import CodecStream, StreamSettings
from daemon.models.registry import default_cache_dir, resolve_folder
from protocol.params import GenerationParams




@dataclass
class ModeResult:
    mode: str
    load_s: float  # engine set-up and warm-up
    steps_per_s: float  # the engine's decode loop alone, every step over the whole window's time
    stream_steps_per_s: float  # median step interval inside stream(), codec decodes interleaved
    ttfa_s: float
    ttfa_bound_s: float  # prefill + the first chunk's steps + one chunk decode, from this run's own speeds
    ttfa_steps_s: float  # when the last step the first chunk needs was done, in this very stream
    chunk_decode_s: float  # one first-chunk codec decode, timed alone
    rtf: float  # seconds of audio per second of wall time
    peak_memory_mb: float
    weight_mb_per_step: float
    floor_steps_per_s: float  # set once the run's bandwidth is known
    agreement: str
    token_agreement: float  # greedy codes agreement with float32 (1 for float32 itself)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    else:
        try:  # Linux: writing 5 resets the process's peak resident set size (VmHWM)
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            pass


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def read_bandwidth_gb_s(device: torch.device, size_mb: int = 512, repeats: int = 5) -> float:
    """Best-of-N memory-read bandwidth: summing a buffer far larger than any cache.

    On a shared machine any one measurement can come out low, so the bench measures before
    every mode and keeps the highest: the floor it implies is then never too easy to reach.
    """
    buffer = torch.ones(size_mb * 2**20 // 4, dtype=torch.float32, device=device)
    buffer.sum()
    best = math.inf
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        buffer.sum()
        sync(device)
        best = min(best, time.perf_counter() - start)
    del buffer
    return size_mb * 2**20 / best / 1e9


class StepClock:
    """A stopping criterion that never stops: it timestamps every decode step of generate()."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def __call__(self, input_ids, scores, **kwargs):
        self.times.append(time.perf_counter())
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


def steps_per_s(times: list[float]) -> float:
    """From per-step timestamps: the median interval, so the few steps that also decoded a chunk
    of audio, or met another process on this shared machine, do not count as decode speed."""
    return 1.0 / statistics.median(b - a for a, b in zip(times, times[1:]))


def mean_steps_per_s(times: list[float]) -> float:
    """Steps per second over the whole loop, every stall included (printed next to the median)."""
    return (len(times) - 1) / (times[-1] - times[0])


def baseline(bundle: MusicgenBundle, prompt: str, params: GenerationParams, frames: int) -> tuple[float, float]:
    """transformers' generate() decode steps per second (the decode loop only, not encode/decode)."""
    from transformers import StoppingCriteriaList

    clock = StepClock()
    tokens = bundle.tokenizer([prompt], return_tensors="pt").to(bundle.device)
    torch.manual_seed(0)
    with torch.inference_mode():
        bundle.model.generate(**tokens, do_sample=True, top_k=params.top_k, guidance_scale=params.guidance_scale,
                              max_new_tokens=frames + delay_steps(bundle.num_codebooks, bundle.audio_channels),
                              stopping_criteria=StoppingCriteriaList([clock]))
    return steps_per_s(clock.times), mean_steps_per_s(clock.times)


def run_mode(bundle: MusicgenBundle, options: EngineOptions, prompt: str, params: GenerationParams,
             reference: MusicgenEngine | None, codec_thread: bool = False) -> ModeResult:
    """`options` through the streaming path (`codec_thread`: the decode on a thread of its own, as
    `riffd serve --codec-thread` runs it)."""
    settings = StreamSettings()
    reset_peak_memory(bundle.device)
    start = time.perf_counter()
    model = MusicGen(bundle, engine=options, stream_settings=settings, codec_thread=codec_thread)
    load_s = time.perf_counter() - start
    step_times: list[float] = []
    sync(bundle.device)
    start = time.perf_counter()
    ttfa = None
    audio_samples = 0
    stream = model.stream(prompt, params, progress=lambda done, total: step_times.append(time.perf_counter()))
    while True:
        try:
            chunk = next(stream)
        except StopIteration as stop:
            report: StreamReport = stop.value
            break
        if ttfa is None:
            ttfa = time.perf_counter() - start
        audio_samples += chunk.frames
    wall = time.perf_counter() - start
    engine = model.engine
    assert engine is not None and ttfa is not None
    # Steps over their own time: no codec decodes, no prefill; a speculative mode's bursts whole.
    rate = report.steps / report.step_s
    # What the first chunk cannot avoid: prefill, its own frames' steps, and one chunk decode.
    bundle_delay = delay_steps(bundle.num_codebooks, bundle.audio_channels)
    first_chunk_codes = model.codec.frames_for(settings.first_chunk_frames * bundle.hop_length)  # + the lookahead
    needed_steps = first_chunk_codes + bundle_delay
    prefill_s = step_times[0] - start
    codes = torch.zeros((1, bundle.num_codebooks, first_chunk_codes), dtype=torch.long, device=bundle.device)
    sync(bundle.device)
    decode_start = time.perf_counter()
    CodecStream(model.codec, settings).push(codes)
    sync(bundle.device)
    chunk_decode_s = time.perf_counter() - decode_start
    bound = prefill_s + (needed_steps - 1) / rate + chunk_decode_s
    peak = peak_memory_mb(bundle.device)
    agreement, token_agreement = "reference", 1.0
    if options.draft:
        # Every kept code is float32's own choice or draw (greedy codes equal float32's:
        # tests/musicgen/test_speculative.py); its one-step scores are float32's by construction.
        agreement = "float32's scores for every column (speculative; greedy codes equal float32's)"
    elif reference is not None:
        cond = build_conditioning(bundle, [prompt], guidance_scale=params.guidance_scale)
        a = compare(reference, engine, cond, frames=16, guidance_scale=params.guidance_scale)
        token_agreement = a.token_agreement
        agreement = f"greedy {a.token_agreement:.1%}, logit err max {a.max_logit_error:.3g} rel {a.relative_logit_error:.3g}"
    weight_bytes = engine.weight_bytes_per_step
    result = ModeResult(
        mode=options.name, load_s=load_s, steps_per_s=rate, stream_steps_per_s=steps_per_s(step_times), ttfa_s=ttfa,
        ttfa_bound_s=bound,
        ttfa_steps_s=step_times[needed_steps - 1] - start, chunk_decode_s=chunk_decode_s,
        rtf=(audio_samples / bundle.sample_rate) / wall, peak_memory_mb=peak, weight_mb_per_step=weight_bytes / 2**20,
        floor_steps_per_s=math.nan, agreement=agreement, token_agreement=token_agreement,
    )
    del model, engine
    gc.collect()
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="random/musicgen-small")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--duration", type=float, default=None, help="seconds of audio per run (default 2; 4 with --full)")
    parser.add_argument("--guidance-scale", type=float, default=3.0)
    parser.add_argument("--top-k", type=int, default=250)
    parser.add_argument("--prompt", default="80s pop track with bassy drums and synth")
    parser.add_argument("--modes", default=None, help="comma-separated engine modes, or all (default on a CPU: "
                        "float32,bfloat16,int8; with --full, those --engine auto considers here, int4 aside: "
                        "float32,bfloat16,int8,int8dyn,float32+draft with riffd's int8 kernels; on a GPU "
                        "float32,bfloat16+compile,float16+compile; +compile anywhere)")
    parser.add_argument("--full", action="store_true", help="the whole sweep: every mode auto considers, 4 s each")
    add_cpu_arguments(parser)
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--skip-baseline", action="store_true", help="engine modes only (ratio reported as null)")
    args = parser.parse_args(argv)
    if args.duration is None:
        args.duration = 4.0 if args.full else 2.0
    apply_cpu_arguments(args, "bench.musicgen_stream")
    started = time.perf_counter()
    logging.basicConfig(level=logging.WARNING)
    device = pick_device(args.device)
    if args.modes == "all":
        modes = ",".join([f for f in WEIGHT_FORMATS if f != "float16"] if device.type == "cpu"
                         else ["float32", "bfloat16+compile", "float16+compile"])
        modes += ",float32+draft"
    elif args.modes:
        modes = args.modes
    elif device.type == "cpu" and args.full:
        modes = ",".join(mode for mode in offered_modes(device) if mode != "int4")
    elif device.type == "cpu":
        modes = "float32,bfloat16,int8"  # int8 runs as int8dyn where riffd's kernels cannot (runnable)
    else:
        modes = "float32,bfloat16+compile,float16+compile"
    folder = resolve_folder(args.model, cache_dir=args.cache_dir or default_cache_dir())
    bundle = load_folder(folder, model_id=args.model, device=device)
    params = GenerationParams(duration_s=args.duration, top_k=args.top_k, guidance_scale=args.guidance_scale, seed=0)
    frames = math.ceil(args.duration * bundle.frame_rate)
    print(f"{args.model} on {device} ({torch.get_num_threads()} threads; {this_cpu().model}, "
          f"{isa_label(args.emulate)}), {args.duration:g} s = {frames} frames, guidance {args.guidance_scale:g}, "
          f"top-k {args.top_k}")

    bandwidth = read_bandwidth_gb_s(device)
    # The baseline runs before and after the engine modes and keeps its better run: on a shared
    # machine one unlucky stretch must not make the engine look faster than it is.
    base_runs = [] if args.skip_baseline else [baseline(bundle, args.prompt, params, frames)]

    reference = MusicgenEngine(bundle, EngineOptions(warmup=False))
    results: list[ModeResult] = []
    for spec in modes.split(","):
        options, mapped = runnable(EngineOptions.parse(spec.strip()), device)
        if mapped:
            print(f"{spec}: {mapped}")
        if options.name in (r.mode for r in results):
            continue
        bandwidth = max(bandwidth, read_bandwidth_gb_s(device))
        result = run_mode(bundle, options, args.prompt, params, None if options.name == "float32" else reference)
        results.append(result)
    bandwidth = max(bandwidth, read_bandwidth_gb_s(device))
    base = None
    if base_runs:
        base_runs.append(baseline(bundle, args.prompt, params, frames))
        base = max(median for median, _ in base_runs)
        runs = ", ".join(f"{median:.2f} (mean {mean:.2f})" for median, mean in base_runs)
        print(f"baseline transformers generate(): {base:.2f} steps/s, the better of two runs: {runs}")
    print(f"memory-read bandwidth: {bandwidth:.1f} GB/s (best of {len(results) + 2} measurements in this run)")
    for result in results:
        result.floor_steps_per_s = bandwidth * 1e9 / (result.weight_mb_per_step * 2**20)
    for result in results:
        ratio = f"{result.steps_per_s / base:.2f}x baseline" if base else "no baseline"
        # A speculative mode's columns come in bursts: a median interval inside stream() says nothing.
        inside = "bursts" if "+draft" in result.mode else f"{result.stream_steps_per_s:.2f}, median"
        print(f"{result.mode:>18}: {result.steps_per_s:6.2f} steps/s ({ratio}; inside stream() "
              f"{inside}), floor {result.floor_steps_per_s:6.2f} "
              f"steps/s ({result.steps_per_s / result.floor_steps_per_s:.0%} of it, {result.weight_mb_per_step:.0f} MB "
              f"weights a step), TTFA {result.ttfa_s:.2f} s (bound {result.ttfa_bound_s:.2f} s; its steps took {result.ttfa_steps_s:.2f} s, "
              f"a chunk decode {result.chunk_decode_s:.2f} s), RTF {result.rtf:.2f}, "
              f"peak {result.peak_memory_mb:.0f} MB, load+warm-up {result.load_s:.1f} s; {result.agreement}")
    # A mode that changes the music is no speed-up: the best is the one --engine auto would pick.
    if any(r.mode == "float32" for r in results):
        calibration = Calibration(key="bench", model_id=args.model, machine=isa_label(args.emulate),
                                  measurements=tuple(ModeMeasurement(r.mode, r.steps_per_s, r.token_agreement)
                                                     for r in results), seconds=0.0)
        choice = choose(calibration)
        best = next(r for r in results if r.mode == choice.mode)
        print(f"--engine auto would pick {choice.reason}")
    else:
        best = max([r for r in results if r.token_agreement >= MIN_AGREEMENT] or results, key=lambda r: r.steps_per_s)
    summary = {
        "baseline_steps_per_s": round(base, 3) if base else None,
        "best_mode": best.mode,
        "best_steps_per_s": round(best.steps_per_s, 3),
        "ratio": round(best.steps_per_s / base, 3) if base else None,
        "ttfa_s": round(best.ttfa_s, 3),
        "rtf": round(best.rtf, 3),
        "floor_steps_per_s": round(best.floor_steps_per_s, 3),
        "floor_fraction": round(best.steps_per_s / best.floor_steps_per_s, 3),
        "float32_ratio": next((round(r.steps_per_s / base, 3) for r in results if r.mode == "float32"), None)
        if base else None,
        # float32's own distribution (greedy: its codes), checked in one pass over drafted columns
        "float32_draft_ratio": next((round(r.steps_per_s / base, 3) for r in results if r.mode == "float32+draft"),
                                    None) if base else None,
        "bandwidth_gb_s": round(bandwidth, 2),
        "device": str(device),
        "cpu": this_cpu().model,
        "isa": isa_label(args.emulate),
        "threads": torch.get_num_threads(),
        "duration_s": args.duration,
        "wall_s": round(time.perf_counter() - started, 1),
        "modes": {r.mode: {"steps_per_s": round(r.steps_per_s, 3), "agreement": round(r.token_agreement, 4),
                           "ttfa_s": round(r.ttfa_s, 3), "rtf": round(r.rtf, 3)} for r in results},
    }
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
