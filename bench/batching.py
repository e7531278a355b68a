"""Benchmark: continuous batching, N concurrent MusicGen jobs sharing each decode step, against the
same jobs one after another, in the same run.

For N in 1, 2, 4, 8 (defaults: random/musicgen-small, int8a8, guidance 3, top-k 250, 2 s each) it
decodes N seeded windows one after another, then the same N at once in the shared batch (taking
turns `--rounds` times, the best rate of each counting), and prints aggregate decode steps per
second of both and their ratio (`speedup_N`); then the time to
first audio of a stream joining a busy batch (3 streams running) against the same stream on an
idle model; and peak memory. Decode rates count decode steps only (the codec runs in the TTFA
part). Every batched window is checked to give exactly its codes decoded alone. Prints a table,
then one JSON object as the last line.

`--device cuda` runs it on a GPU (engine bfloat16 or float16 there); the slot arena (arena.py: one
fixed-shape step for every stream's rows) is on by default there, and `--arena` puts it on the CPU
(with a float engine: `--engine float32 --arena`), `--no-arena` off.

    .venv/bin/python -m bench.batching [--model random/musicgen-small] [--engine int8a8] [--duration 2]
        [--streams 1,2,4,8] [--threads N] [--emulate avx2] [--rounds 2] [--device cpu] [--arena | --no-arena]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from bench.isa import add_cpu_arguments, apply_cpu_arguments, isa_label  # noqa: E402
from bench.musicgen_stream import peak_memory_mb, reset_peak_memory  # noqa: E402
from daemon.models.musicgen.backend import MusicGen  # noqa: E402
from daemon.models.musicgen.batch import StepBatch  # noqa: E402
from daemon.models.musicgen.conditioning import build_conditioning  # noqa: E402
from daemon.models.musicgen.loader import load_folder, pick_device  # noqa: E402
from daemon.models.musicgen.loop import decoder_columns  # noqa: E402
from daemon.models.musicgen.options import EngineOptions  # noqa: E402
from daemon.models.registry import default_cache_dir, resolve_folder  # noqa: E402
from daemon.native.branches import cpu_name  # noqa: E402
from daemon.seeds import seeded_rng  # noqa: E402
from protocol.errors import Cancelled  # noqa: E402
from protocol.params import GenerationParams  # noqa: E402

T = TypeVar("T")

PROMPTS = ("lofi hip hop beat", "ambient pads", "funk bass groove", "jazz piano trio", "techno kick and hats",
           "string quartet", "dub reggae", "acoustic folk guitar")


def run_alone(model: MusicGen, seeds: list[int], params: GenerationParams, frames: int) -> tuple[float, int, list]:
    """Decode each seeded window in turn, alone: (seconds, steps, columns per window)."""
    assert model.engine is not None
    steps, made = 0, []
    start = time.perf_counter()
    for seed in seeds:
        cond = build_conditioning(model.bundle, [PROMPTS[seed % len(PROMPTS)]], guidance_scale=params.guidance_scale)
        columns = list(decoder_columns(model.engine.decoder, model.bundle, cond, None, frames, params,
                                       seeded_rng(seed, model.bundle.device)))
        steps += len(columns)
        made.append(torch.stack(columns, dim=-1))
    return time.perf_counter() - start, steps, made


def on_a_thread(fn: Callable[..., T], *args: object) -> T:
    """`fn(*args)` on a worker thread, as the daemon runs jobs (the main thread's native calls can be
    much slower: OpenMP runtimes sharing the process), so alone and batched are timed alike; what it
    raises is raised here."""
    result: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            result.append(fn(*args))
        except BaseException as exc:  # handed back to the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


def run_together(model: MusicGen, batch: StepBatch, seeds: list[int], params: GenerationParams,
                 frames: int) -> tuple[float, int, list]:
    """The same windows at once in the shared batch: (seconds, steps, columns per window)."""
    conds = [build_conditioning(model.bundle, [PROMPTS[s % len(PROMPTS)]], guidance_scale=params.guidance_scale)
             for s in seeds]
    made: list = [None] * len(seeds)

    def run(index: int) -> None:
        made[index] = torch.stack(list(batch.columns(model.bundle, conds[index], None, frames, params,
                                                     seeded_rng(seeds[index], model.bundle.device),
                                                     label=f"s{index}")), dim=-1)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(seeds))]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - start, sum(m.shape[-1] for m in made), made


def ttfa(model: MusicGen, seed: int, params: GenerationParams, busy: int) -> float:
    """Seconds to the first audio chunk of a batched job while `busy` long jobs step in the batch."""
    assert model.batch is not None
    stop = threading.Event()
    long_params = GenerationParams(duration_s=20.0, seed=0, top_k=params.top_k, guidance_scale=params.guidance_scale)

    def keep_busy(index: int) -> None:
        try:
            for _ in model.stream(PROMPTS[index], long_params, should_stop=stop.is_set, batched=True,
                                  label=f"busy{index}"):
                pass
        except Cancelled:
            pass  # how the busy jobs end

    runners = [threading.Thread(target=keep_busy, args=(i,)) for i in range(busy)]
    for thread in runners:
        thread.start()
    while len(model.batch.snapshot().streams) < busy:
        time.sleep(0.01)
    time.sleep(0.5)  # the batch settled into its stride

    def first_audio() -> float:
        started = time.perf_counter()
        chunks = model.stream(PROMPTS[seed % len(PROMPTS)], params, batched=True, label="joining")
        next(chunks)
        took = time.perf_counter() - started
        chunks.close()
        return took

    took = on_a_thread(first_audio)  # a worker thread, as the daemon's job
    stop.set()
    for thread in runners:
        thread.join()
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="random/musicgen-small")
    parser.add_argument("--engine", default="int8a8",
                        help="engine mode (default int8a8: the fastest batched CPU mode measured, on an AMD EPYC "
                             "Zen 4 with AVX-512 VNNI, at 94 %% greedy agreement with float32; int8: 97 %%)")
    parser.add_argument("--duration", type=float, default=2.0, help="seconds of audio per job")
    parser.add_argument("--streams", default="1,2,4,8")
    add_cpu_arguments(parser)
    parser.add_argument("--rounds", type=int, default=2,
                        help="alone and together take turns this many times; the best rate of each counts "
                             "(the machine is shared: the best is the least disturbed)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    parser.add_argument("--arena", action=argparse.BooleanOptionalAction, default=None,
                        help="windows in the slot arena, one step for all streams (default: on a GPU)")
    parser.add_argument("--arena-graphs", action=argparse.BooleanOptionalAction, default=None,
                        help="the arena's step replayed from CUDA graphs (default: on a GPU)")
    parser.add_argument("--batch-memory-mb", type=float, default=4096.0,
                        help="the batch's KV-cache memory (the daemon's default; the arena is sized within it)")
    parser.add_argument("--python-step", action="store_true",
                        help="int8/int8a8: the Python step (weights shared across streams) instead of the native one")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    apply_cpu_arguments(args, "bench.batching")
    counts = [int(n) for n in args.streams.split(",")]
    device = pick_device(args.device)
    bundle = load_folder(resolve_folder(args.model, cache_dir=default_cache_dir()), model_id=args.model, device=device)
    options = EngineOptions.parse(args.engine)
    model = MusicGen(bundle, engine=options, max_batch=max(*counts, 4), arena=args.arena,
                     arena_graphs=args.arena_graphs, batch_memory_mb=args.batch_memory_mb)  # the TTFA part runs 4 at once
    assert model.engine is not None and model.batch is not None, "+draft modes do not batch"
    if args.python_step:
        model.engine.decoder.native = None
    params = GenerationParams(duration_s=args.duration, top_k=250, guidance_scale=3.0)
    frames = math.ceil(args.duration * bundle.frame_rate)
    reset_peak_memory(device)

    rows: list[tuple[int, float, float, float, bool]] = []
    summary: dict[str, object] = {}
    for n in counts:
        seeds = list(range(1, n + 1))
        alone_rate = together_rate = 0.0
        same = True
        for _ in range(args.rounds):
            alone_s, alone_steps, alone_codes = on_a_thread(run_alone, model, seeds, params, frames)
            together_s, together_steps, together_codes = run_together(model, model.batch, seeds, params, frames)
            same = same and all(torch.equal(a, b) for a, b in zip(alone_codes, together_codes, strict=True))
            alone_rate = max(alone_rate, alone_steps / alone_s)
            together_rate = max(together_rate, together_steps / together_s)
        rows.append((n, alone_rate, together_rate, together_rate / alone_rate, same))
        summary[f"steps_per_s_{n}"] = round(together_rate, 2)
        summary[f"sequential_steps_per_s_{n}"] = round(alone_rate, 2)
        if n > 1:
            summary[f"speedup_{n}"] = round(together_rate / alone_rate, 3)
        print(f"{n} stream(s): one after another {alone_rate:.2f} steps/s, together {together_rate:.2f} steps/s "
              f"({together_rate / alone_rate:.2f}x), codes equal alone: {same}", flush=True)

    ttfa_params = GenerationParams(duration_s=2.0, seed=5, top_k=250, guidance_scale=3.0)
    idle = min(ttfa(model, 5, ttfa_params, busy=0) for _ in range(2))
    joining = min(ttfa(model, 5, ttfa_params, busy=3) for _ in range(2))
    peak = peak_memory_mb(device)
    arena = model.engine.decoder.arena
    print(f"TTFA idle {idle:.3f} s, joining a batch of 3: {joining:.3f} s ({joining / idle:.2f}x); "
          f"peak RSS {peak:.0f} MB")
    summary.update({
        "model": args.model, "engine": options.name + ("(python step)" if args.python_step else ""),
        "step": "native" if model.engine.decoder.native is not None else "python",
        "device": str(device), "arena_rows": arena.rows if arena is not None else 0,
        "arena_mb": round(arena.nbytes / 2**20) if arena is not None else 0,
        "arena_graphs": arena is not None and arena.graphed,
        "cpu": cpu_name(), "isa": isa_label(args.emulate), "threads": torch.get_num_threads(), "duration_s": args.duration,
        "rounds": args.rounds, "load_avg_1m": round(os.getloadavg()[0], 2),
        "ttfa_idle_s": round(idle, 3), "ttfa_joining_s": round(joining, 3),
        "ttfa_joining_ratio": round(joining / idle, 3), "peak_rss_mb": round(peak),
        "codes_equal_alone": all(row[4] for row in rows),
    })
    print(json.dumps(summary))
    return 0 if summary["codes_equal_alone"] else 1


if __name__ == "__main__":
    sys.exit(main())
