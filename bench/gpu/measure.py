"""The GPU check (issue 16): parity with transformers, each mode's speed, batched streams, on one GPU.

One process, sections in the order that matters most, each bounded in time and each written to
`OUTDIR/gpu.json` as soon as it ends (a run cut short keeps what it measured):

- `env`: the GPU, the libraries, a device-to-device copy's bandwidth.
- `parity`: float32's greedy codes against transformers' `generate(do_sample=False)` on the same
  GPU (equal, code for code), and the streamed audio against its one-shot decode (dB).
- `modes`: float32, bfloat16 and float16, each eager and `+compile` (CUDA graphs): decode steps per
  second against `generate()` (sampled, measured before and after, the better run kept), greedy
  agreement with float32, time to the first audio chunk and real-time factor through the engine's
  streaming path (`bench.musicgen_stream.run_mode`), peak memory.
- `rows`: 1, 8, 32 and 64 prompts in one window (one cache, every step shared).
- `arena`: one shared decode step of 1, 8, 32 and 64 streams, today's path (each stream's rows on their
  own) against the slot arena (every row in one step, from CUDA graphs; `bench.arena_step`).
- `batch`: 1, 8, 32 and 64 concurrent streams in the engine's shared step (continuous batching,
  `StepBatch`): aggregate steps per second and real-time factor, and whether each stream's codes
  equal its codes decoded alone.
- `auto`: `riffd serve`'s default engine as the daemon loads it (calibration, pick), one streamed job.

    python -m bench.gpu.measure OUTDIR [--device auto] [--model random/musicgen-small] [--budget-s 330]
        [--sections env,parity,profile,modes,rows,batch,auto] [--modes ...] [--streams 1,8,32,64] [--duration 4]
    python -m bench.gpu.measure OUTDIR --dry-run      (the CPU: debug/musicgen, seconds; CI runs this)

Prints a table, then one JSON object as the last line. `bench/gpu/run.sh` runs it on a CUDA machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import logging
import math
import platform
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without installing

from bench.arena_step import run as run_arena_steps  # noqa: E402
from bench.batching import on_a_thread, run_alone, run_together  # noqa: E402
from bench.musicgen_stream import baseline, peak_memory_mb, reset_peak_memory, run_mode, steps_per_s, sync  # noqa: E402
from daemon.models.musicgen.backend import MusicGen  # noqa: E402
from daemon.models.musicgen.delay import delay_steps  # noqa: E402
from daemon.models.musicgen.engine import MusicgenEngine  # noqa: E402
from daemon.models.musicgen.loader import MusicgenBundle, load_folder, pick_device  # noqa: E402
from daemon.models.musicgen.options import EngineOptions  # noqa: E402
from daemon.models.registry import default_cache_dir, resolve_folder  # noqa: E402
from protocol.params import GenerationParams  # noqa: E402

log = logging.getLogger("bench.gpu")

PROMPT = "80s pop track with bassy drums and synth"
GPU_MODES = ("float32", "bfloat16", "float16", "bfloat16+compile", "float16+compile", "float32+compile")
CPU_MODES = ("float32", "bfloat16")  # the dry run: what a CPU runs of the same sections


class Report:
    """The run's JSON, rewritten whole after every section so a cut-short run keeps what it has."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = {"sections": {}}

    def put(self, section: str, value: Any) -> None:
        self.data["sections"][section] = value
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, default=str))
        tmp.replace(self.path)


def run_section(report: Report, name: str, fn: Callable[[], Any]) -> Any:
    """Run one section; its exception is recorded (with the traceback) instead of ending the run."""
    start = time.perf_counter()
    print(f"== {name}", flush=True)
    try:
        value = fn()
        status = "ok"
    except Exception as exc:  # one section's failure must not lose the others' figures
        traceback.print_exc()
        value, status = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-3000:]}, "error"
    took = time.perf_counter() - start
    if isinstance(value, dict):
        value = {**value, "status": status, "seconds": round(took, 1)}
    report.put(name, value)
    print(f"== {name}: {status} in {took:.1f} s", flush=True)
    return value


def copy_bandwidth_gb_s(device: torch.device, size_mb: int = 1024) -> float:
    """A device-to-device copy, bytes read plus bytes written over the best of five."""
    src = torch.empty(size_mb * 2**20, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)
    best = math.inf
    for _ in range(5):
        sync(device)
        start = time.perf_counter()
        dst.copy_(src)
        sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size_mb * 2**20 / best / 1e9


def section_env(device: torch.device) -> dict[str, Any]:
    import transformers

    facts: dict[str, Any] = {"torch": torch.__version__, "transformers": transformers.__version__,
                             "python": platform.python_version(), "device": str(device),
                             "cpu_threads": torch.get_num_threads()}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        facts.update(gpu=props.name, gpu_memory_gb=round(props.total_memory / 1e9, 1),
                     multiprocessors=props.multi_processor_count, cuda=torch.version.cuda)
    facts["copy_gb_s"] = round(copy_bandwidth_gb_s(device, 1024 if device.type == "cuda" else 64), 1)
    return facts


def hf_greedy_codes(bundle: MusicgenBundle, prompt: str, frames: int) -> tuple[torch.Tensor, np.ndarray]:
    """transformers' greedy codes `[K, frames]` for `prompt` (delay undone), as its generate() hands them
    to the codec, and its audio `[C, samples]`."""
    captured: list[torch.Tensor] = []
    codec = bundle.model.audio_encoder
    original = codec.decode

    def spy(codes: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        captured.append(codes.clone())
        return original(codes, *args, **kwargs)

    tokens = bundle.tokenizer([prompt], return_tensors="pt").to(bundle.device)
    codec.decode = spy
    try:
        with torch.inference_mode():
            audio = bundle.model.generate(**tokens, do_sample=False, guidance_scale=3.0,
                                          max_new_tokens=frames + delay_steps(bundle.num_codebooks,
                                                                              bundle.audio_channels))
    finally:
        codec.decode = original
    return captured[0][0, 0, :, :frames], audio[0].float().cpu().numpy()  # [chunks, B, K, T] -> [K, T]


def section_parity(bundle: MusicgenBundle, duration_s: float) -> dict[str, Any]:
    """float32 eager: codes equal generate()'s; the same through the slot arena (the daemon's default on a
    GPU: one product over every arena row, masked attention over a bucket of slots), their agreement."""
    params = GenerationParams(duration_s=duration_s, greedy=True, guidance_scale=3.0)
    model = MusicGen(bundle, engine=EngineOptions(warmup=False), arena=False)
    ours = model.generate([PROMPT], params).codes[0]  # [K, T]
    theirs, their_audio = hf_greedy_codes(bundle, PROMPT, ours.shape[-1])
    # The streamed audio (the stateful streaming codec, chunk by chunk) against transformers' one-shot decode.
    streamed = np.concatenate([chunk.audio for chunk in model.stream(PROMPT, params)], axis=-1)
    samples = min(streamed.shape[-1], their_audio.shape[-1])
    error = streamed[..., :samples] - their_audio[..., :samples]
    snr_db = float(10 * np.log10(np.sum(their_audio[..., :samples] ** 2) / max(float(np.sum(error ** 2)), 1e-30)))
    in_arena = MusicGen(bundle, engine=EngineOptions(warmup=False), arena=True).generate([PROMPT], params).codes[0]
    equal = theirs.shape == ours.shape and bool(torch.equal(theirs.cpu(), ours.cpu()))
    first_difference = None
    if not equal and theirs.shape == ours.shape:
        where = (theirs.cpu() != ours.cpu()).any(0).nonzero()
        first_difference = int(where[0]) if len(where) else None
    result: dict[str, Any] = {
        "frames": int(ours.shape[-1]), "float32_codes_equal_generate": equal,
        "float32_codes_agreement": round(float((theirs.cpu() == ours.cpu()).float().mean()), 4)
        if theirs.shape == ours.shape else None,
        "first_different_frame": first_difference,
        "stream_audio_snr_db": round(snr_db, 1), "stream_audio_max_abs_error": float(np.abs(error).max()),
        "float32_arena_codes_equal_generate": theirs.shape == in_arena.shape
        and bool(torch.equal(theirs.cpu(), in_arena.cpu())),
        "float32_arena_codes_agreement": round(float((theirs.cpu() == in_arena.cpu()).float().mean()), 4)
        if theirs.shape == in_arena.shape else None,
    }
    print(f"float32 greedy codes equal generate()'s: {equal} over {ours.shape[-1]} frames; the streamed audio "
          f"against generate()'s one-shot decode: {snr_db:.1f} dB", flush=True)
    return result


def section_profile(bundle: MusicgenBundle, mode: str, frames: int = 24) -> dict[str, Any]:
    """torch.profiler over one short window's decode in `mode`: the ops that take the time, by host and
    by device time (why a mode is slow where it should not be)."""
    from torch.profiler import ProfilerActivity, profile

    model = MusicGen(bundle, engine=EngineOptions.parse(mode).validate(bundle.device))
    params = GenerationParams(duration_s=frames / bundle.frame_rate, greedy=True, guidance_scale=3.0)
    model.generate([PROMPT], params)  # warm: the profile is of steady steps
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if bundle.device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        model.generate([PROMPT], params)
        sync(bundle.device)
    events = prof.key_averages()
    device_key = "self_cuda_time_total" if bundle.device.type == "cuda" else "self_cpu_time_total"
    tables = {key: events.table(sort_by=key, row_limit=18, max_name_column_width=60)
              for key in ("self_cpu_time_total", device_key)}
    for key, table in tables.items():
        print(f"-- {mode}, by {key}\n{table}", flush=True)
    return {"mode": mode, "frames": frames, "tables": tables}


def section_modes(bundle: MusicgenBundle, modes: list[str], duration_s: float, deadline: float) -> dict[str, Any]:
    """Each mode through the streaming path, against generate() measured before and after."""
    params = GenerationParams(duration_s=duration_s, top_k=250, guidance_scale=3.0, seed=0)
    frames = math.ceil(duration_s * bundle.frame_rate)
    base_runs = [baseline(bundle, PROMPT, params, frames)]
    reference = MusicgenEngine(bundle, EngineOptions(warmup=False))
    results: dict[str, Any] = {}
    for spec in modes:
        if time.perf_counter() > deadline:
            results[spec] = {"skipped": "time budget"}
            continue
        try:
            options = EngineOptions.parse(spec).validate(bundle.device)
            r = run_mode(bundle, options, PROMPT, params, None if spec == "float32" else reference)
        except Exception as exc:  # a mode that breaks here is a finding; the others still run
            traceback.print_exc()
            results[spec] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        results[spec] = {"steps_per_s": round(r.steps_per_s, 2), "stream_steps_per_s": round(r.stream_steps_per_s, 2),
                         "ttfa_s": round(r.ttfa_s, 4), "ttfa_bound_s": round(r.ttfa_bound_s, 4),
                         "chunk_decode_s": round(r.chunk_decode_s, 4), "rtf": round(r.rtf, 2),
                         "agreement": round(r.token_agreement, 4), "agreement_detail": r.agreement,
                         "peak_memory_mb": round(r.peak_memory_mb), "load_s": round(r.load_s, 1)}
        print(f"{spec:>18}: {r.steps_per_s:8.1f} steps/s, TTFA {r.ttfa_s:.3f} s, RTF {r.rtf:.2f}, "
              f"agreement {r.token_agreement:.3f}, peak {r.peak_memory_mb:.0f} MB, load {r.load_s:.1f} s", flush=True)
    # The fastest mode again with its decode on a thread of its own (`serve --codec-thread`): on a GPU the
    # codec's launches and the steps' graph replays can overlap on the host's cores.
    fastest = max((m for m, v in results.items() if "steps_per_s" in v), key=lambda m: results[m]["rtf"], default=None)
    if fastest is not None and time.perf_counter() < deadline:
        r = run_mode(bundle, EngineOptions.parse(fastest), PROMPT, params, None, codec_thread=True)
        results[f"{fastest} codec-thread"] = {
            "steps_per_s": round(r.steps_per_s, 2), "ttfa_s": round(r.ttfa_s, 4), "rtf": round(r.rtf, 2),
            "agreement": results[fastest].get("agreement"), "peak_memory_mb": round(r.peak_memory_mb),
            "load_s": round(r.load_s, 1)}
        print(f"{fastest} with the codec thread: {r.steps_per_s:.1f} steps/s, TTFA {r.ttfa_s:.3f} s, RTF {r.rtf:.2f}",
              flush=True)
    base_runs.append(baseline(bundle, PROMPT, params, frames))
    base = max(median for median, _ in base_runs)
    for value in results.values():
        if "steps_per_s" in value:
            value["vs_generate"] = round(value["steps_per_s"] / base, 2)
    return {"generate_steps_per_s": round(base, 2), "duration_s": duration_s, "modes": results}


def section_batch(bundle: MusicgenBundle, mode: str, streams: list[int], duration_s: float,
                  deadline: float) -> dict[str, Any]:
    """N streams at once in the shared step: aggregate rate, real-time factor, codes equal alone."""
    params = GenerationParams(duration_s=duration_s, top_k=250, guidance_scale=3.0)
    frames = math.ceil(duration_s * bundle.frame_rate)
    options = EngineOptions.parse(mode).validate(bundle.device)
    release_device_memory(bundle.device)
    # The slot arena (arena.py) on every device: the GPU's default, and the CPU's dry run goes through it.
    model = MusicGen(bundle, engine=options, max_batch=max(streams), batch_memory_mb=64 * 1024, arena=True)
    assert model.batch is not None
    rows: dict[str, Any] = {}
    for n in streams:
        if time.perf_counter() > deadline:
            rows[str(n)] = {"skipped": "time budget"}
            continue
        seeds = list(range(1, n + 1))
        reset_peak_memory(bundle.device)
        together_s, together_steps, together = on_a_thread(run_together, model, model.batch, seeds, params, frames)
        row: dict[str, Any] = {
            "steps_per_s": round(together_steps / together_s, 1),
            "aggregate_rtf": round(n * frames / bundle.frame_rate / together_s, 2),
            "per_stream_rtf": round(frames / bundle.frame_rate / together_s, 2),
            "peak_memory_mb": round(peak_memory_mb(bundle.device)),
        }
        # Alone, for the codes (every stream) and the sequential rate, where it fits the time.
        if n <= 8 and time.perf_counter() < deadline:
            alone_s, alone_steps, alone = on_a_thread(run_alone, model, seeds, params, frames)
            row["codes_equal_alone"] = all(torch.equal(a, b) for a, b in zip(alone, together, strict=True))
            row["sequential_steps_per_s"] = round(alone_steps / alone_s, 1)
        rows[str(n)] = row
        print(f"{n:3d} streams ({mode}): {row}", flush=True)
    arena = model.engine.decoder.arena if model.engine is not None else None
    # The slot arena (arena.py, on by default on a GPU): every stream's rows in one step.
    return {"mode": mode, "duration_s": duration_s, "streams": rows,
            "arena": {"rows": arena.rows, "positions": arena.positions, "mb": round(arena.nbytes / 2**20),
                      "graphs": arena.graphed}
            if arena is not None else None}


def section_arena(bundle: MusicgenBundle, mode: str, streams: list[int]) -> dict[str, Any]:
    """One shared step of N guided streams at slot 100: today's path (each stream's rows on their own) against
    the slot arena (every row in one step, from CUDA graphs on a GPU), decode steps only (bench.arena_step)."""
    options = EngineOptions.parse(mode).validate(bundle.device)
    release_device_memory(bundle.device)
    result = run_arena_steps(bundle, dataclasses.replace(options, warmup=False), streams, position=100, steps=3,
                             rounds=2, graphs=None)
    release_device_memory(bundle.device)
    return {"mode": mode, **result}


def release_device_memory(device: torch.device) -> None:
    """Free the models the sections before left: a decoder refers to itself (its step, bound), so its slot
    arena (~21 GB for 128 rows of musicgen-small in float16, twice that in float32) goes only when the
    cycle collector runs, and two at once would not fit an 80 GB GPU in float32."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def section_rows(bundle: MusicgenBundle, mode: str, counts: list[int], duration_s: float,
                 deadline: float) -> dict[str, Any]:
    """N prompts in one window (one cache of 2N rows, every step shared): how a step's cost grows with
    its rows on this device, the ceiling for batched streams."""
    params = GenerationParams(duration_s=duration_s, top_k=250, guidance_scale=3.0, seed=1)
    # Today's path for one window (no slot arena): what a window of N prompts costs by itself.
    model = MusicGen(bundle, engine=EngineOptions.parse(mode).validate(bundle.device), arena=False)
    rows: dict[str, Any] = {}
    for n in counts:
        if time.perf_counter() > deadline:
            rows[str(n)] = {"skipped": "time budget"}
            continue
        steps: list[float] = []
        sync(bundle.device)
        start = time.perf_counter()
        render = model.generate([PROMPT] * n, params, progress=lambda done, total, steps=steps: steps.append(
            time.perf_counter()))
        sync(bundle.device)
        wall = time.perf_counter() - start
        step_ms = 1e3 / steps_per_s(steps) if len(steps) > 2 else math.nan  # the median interval
        rows[str(n)] = {"step_ms": round(step_ms, 3), "wall_s": round(wall, 3),
                        "aggregate_rtf": round(n * render.audio.shape[-1] / bundle.sample_rate / wall, 2)}
        print(f"{n:3d} prompts in one window ({mode}): {rows[str(n)]}", flush=True)
    return {"mode": mode, "duration_s": duration_s, "prompts": rows}


def section_auto(model_id: str, device: torch.device, cache_dir: Path | None, duration_s: float) -> dict[str, Any]:
    """`riffd serve`'s default load (`--engine auto`: a calibration, cached, then the pick; compiled on a
    GPU), as the daemon loads it, then one streamed job through it."""
    from daemon.models.registry import load_backend

    start = time.perf_counter()
    backend = load_backend(model_id, device=str(device), cache_dir=cache_dir or default_cache_dir(), engine="auto")
    load_s = time.perf_counter() - start
    assert isinstance(backend, MusicGen)
    params = GenerationParams(duration_s=duration_s, top_k=250, guidance_scale=3.0, seed=0)
    sync(device)
    start = time.perf_counter()
    ttfa, samples = None, 0
    for chunk in backend.stream(PROMPT, params):
        ttfa = ttfa if ttfa is not None else time.perf_counter() - start
        samples += chunk.audio.shape[-1]
    wall = time.perf_counter() - start
    result = {"engine": backend.engine_name, "load_s": round(load_s, 1), "ttfa_s": round(ttfa or math.nan, 4),
              "rtf": round(samples / backend.sample_rate / wall, 2)}
    print(f"auto: {result}", flush=True)
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--model", default=None, help="default random/musicgen-small (debug/musicgen with --dry-run)")
    parser.add_argument("--cache-dir", type=Path, default=None, help="where presets are built (default ~/.cache/riffd)")
    parser.add_argument("--sections", default="env,parity,modes,rows,arena,batch,auto",
                        help="comma-separated; profile (torch.profiler over --profile-mode) is not run unless named")
    parser.add_argument("--modes", default=None, help=f"comma-separated (default on a GPU: {','.join(GPU_MODES)})")
    parser.add_argument("--profile-mode", default="bfloat16", help="the mode the profile section profiles")
    parser.add_argument("--batch-mode", default=None, help="the batched streams' mode (default: the fastest measured)")
    parser.add_argument("--streams", default="1,8,32,64")
    parser.add_argument("--duration", type=float, default=4.0, help="seconds of audio per stream")
    parser.add_argument("--budget-s", type=float, default=330.0, help="sections past this start no new work")
    parser.add_argument("--dry-run", action="store_true", help="the CPU, debug/musicgen, 1 s: the script's plumbing")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    started = time.perf_counter()
    deadline = started + args.budget_s
    if args.dry_run:
        args.device, args.duration, args.streams = "cpu", 1.0, "1,2"
        args.model = args.model or "debug/musicgen"
    model_id = args.model or "random/musicgen-small"
    args.outdir.mkdir(parents=True, exist_ok=True)
    report = Report(args.outdir / "gpu.json")
    device = pick_device(args.device)
    sections = args.sections.split(",")
    report.data.update(model=model_id, argv=sys.argv[1:])
    if "env" in sections:
        run_section(report, "env", lambda: section_env(device))
    load_start = time.perf_counter()
    folder = resolve_folder(model_id, cache_dir=args.cache_dir or default_cache_dir())
    bundle = load_folder(folder, model_id=model_id, device=device)
    report.data["load_s"] = round(time.perf_counter() - load_start, 1)
    if "parity" in sections:
        run_section(report, "parity", lambda: section_parity(bundle, min(args.duration, 2.0)))
    if "profile" in sections:
        run_section(report, "profile", lambda: section_profile(bundle, args.profile_mode))
    modes = args.modes.split(",") if args.modes else list(GPU_MODES if device.type == "cuda" else CPU_MODES)
    measured: dict[str, Any] = {}
    if "modes" in sections:
        # The modes get two thirds of what is left; the batch the rest.
        modes_deadline = time.perf_counter() + (deadline - time.perf_counter()) * 2 / 3
        measured = run_section(report, "modes", lambda: section_modes(bundle, modes, args.duration, modes_deadline))
    if "rows" in sections or "arena" in sections or "batch" in sections:
        fastest = max(((m, v["steps_per_s"]) for m, v in measured.get("modes", {}).items() if "steps_per_s" in v
                       and v.get("agreement", 0) >= 0.9 and "+compile" not in m), key=lambda mv: mv[1], default=None)
        batch_mode = args.batch_mode or (fastest[0] if fastest else modes[0])
        streams = [int(n) for n in args.streams.split(",")]
        if "rows" in sections:
            run_section(report, "rows", lambda: section_rows(bundle, batch_mode, streams, 1.0,
                                                             max(deadline, time.perf_counter() + 20)))
        if "arena" in sections:
            run_section(report, "arena", lambda: section_arena(bundle, batch_mode, streams))
        if "batch" in sections:
            run_section(report, "batch", lambda: section_batch(bundle, batch_mode, streams, min(args.duration, 2.0),
                                                               max(deadline, time.perf_counter() + 30)))
    if "auto" in sections:
        run_section(report, "auto", lambda: section_auto(model_id, device, args.cache_dir, args.duration))
    report.data["wall_s"] = round(time.perf_counter() - started, 1)
    report.put("done", {"wall_s": report.data["wall_s"]})
    summary = _summary(report.data)
    print(json.dumps(summary), flush=True)
    return summary


def _summary(data: dict[str, Any]) -> dict[str, Any]:
    """The one-line JSON: the figures the issue's targets are about."""
    sections = data["sections"]
    modes = sections.get("modes", {}).get("modes", {})
    fine = {m: v for m, v in modes.items() if "steps_per_s" in v and v.get("agreement", 0) >= 0.9}
    best = max(fine, key=lambda m: fine[m]["rtf"], default=None)
    batch = sections.get("batch", {}).get("streams", {})
    return {
        "gpu": sections.get("env", {}).get("gpu"), "model": data.get("model"),
        "float32_codes_equal_generate": sections.get("parity", {}).get("float32_codes_equal_generate"),
        "stream_audio_snr_db": sections.get("parity", {}).get("stream_audio_snr_db"),
        "generate_steps_per_s": sections.get("modes", {}).get("generate_steps_per_s"),
        "best_mode": best, "best_rtf": fine[best]["rtf"] if best else None,
        "best_ttfa_s": fine[best]["ttfa_s"] if best else None,
        "modes": {m: {k: v.get(k) for k in ("steps_per_s", "vs_generate", "ttfa_s", "rtf", "agreement", "error")
                      if k in v} for m, v in modes.items()},
        "float32_arena_codes_equal_generate": sections.get("parity", {}).get("float32_arena_codes_equal_generate"),
        "batch_aggregate_rtf": {n: v.get("aggregate_rtf") for n, v in batch.items()},
        "batch_arena": sections.get("batch", {}).get("arena"),
        "arena_speedup": {n: v.get("arena_speedup") for n, v in sections.get("arena", {}).get("streams", {}).items()},
        "errors": [name for name, v in sections.items() if isinstance(v, dict) and v.get("status") == "error"],
        "wall_s": data.get("wall_s"),
    }


if __name__ == "__main__":
    main()
