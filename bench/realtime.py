"""Benchmark: real time through a running daemon, as a performer's client sees it.

Starts `python -m daemon` (defaults: random/musicgen-small, `--engine auto`, on the CPU), waits
for it to be ready (the load, auto's calibration on its first run for this model and CPU, the
warm-up), then asks it over ZeroMQ for one 60 s job, as a Python client would, and measures from
the request to the first chunk (`ttfa_s`) and to the done event (`rtf`: audio seconds over wall
seconds). The done event says where the daemon's worker spent the job's time (decode steps,
codec, the mean step early and late in the model's 30 s window), the status which engine ran.
This process imports no torch: the daemon has the machine's cores to itself.

Prints a summary, then one JSON object as the last line, with the issue's targets: rtf >= 1.25 on
AVX-512 VNNI or AVX-VNNI CPUs, >= 1.0 on AVX2-only ones; ttfa_s <= 0.25; late/early <= 1.3.

    python -m bench.realtime [--model random/musicgen-small] [--engine auto] [--duration 60]
        [--threads N] [--[no-]codec-thread] [--emulate avx2] [--endpoint tcp://HOST:PORT (a daemon already running)]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from bench.isa import add_cpu_arguments, environment, isa_label  # noqa: E402
from clients import Client  # noqa: E402
from daemon.child import DaemonChild  # noqa: E402
from daemon.cpu import this_cpu  # noqa: E402
from protocol.messages import Chunk, Done, Error  # noqa: E402

#: The issue's targets on a 2-core machine.
RTF_TARGET = {"avx512_vnni": 1.25, "avx_vnni": 1.25, "avx2": 1.0}
TTFA_TARGET_S = 0.25
LATE_EARLY_TARGET = 1.3


def run_job(endpoint: str, prompt: str, duration_s: float, model: str | None) -> dict[str, Any]:
    """One job over ZeroMQ: when its first chunk and its done event arrived, and what the done event says."""
    with Client(endpoint, timeout_s=max(120.0, 4 * duration_s)) as client:
        status = client.status()
        started = time.perf_counter()
        first_chunk_s = None
        done: Done | None = None
        audio_frames, sample_rate = 0, 0
        # The stall: the largest gap between two chunks' arrivals, and the audio second it came at
        # (a long-form window's seam used to stall the stream for its prefill).
        last_chunk_s, gaps = 0.0, []  # (seconds since the chunk before, audio seconds before this chunk)
        for event in client.generate(prompt, duration_s, model=model, seed=0):
            if isinstance(event, Chunk):
                arrived_s = time.perf_counter() - started
                if first_chunk_s is None:
                    first_chunk_s = arrived_s
                else:
                    gaps.append((arrived_s - last_chunk_s, audio_frames / event.sample_rate))
                last_chunk_s = arrived_s
                audio_frames += event.frames
                sample_rate = event.sample_rate
            elif isinstance(event, Error):
                raise RuntimeError(f"the job failed: {event.code}: {event.message}")
            elif isinstance(event, Done):
                done = event
        wall_s = time.perf_counter() - started
    assert done is not None and first_chunk_s is not None
    return {"status": status, "done": done, "ttfa_s": first_chunk_s, "wall_s": wall_s,
            "audio_s": audio_frames / sample_rate, "gaps": sorted(gaps, reverse=True)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="random/musicgen-small")
    parser.add_argument("--engine", default="auto")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of audio in the job")
    parser.add_argument("--prompt", default="80s pop track with bassy drums and synth")
    # Both go to the daemon's process (its environment), not this one's.
    add_cpu_arguments(parser, threads_help="the daemon's torch threads (default: its own)")
    parser.add_argument("--codec-thread", action=argparse.BooleanOptionalAction, default=None,
                        help="the daemon's --codec-thread (decode on its own thread, ahead of the codec; default: "
                             "the daemon's)")
    parser.add_argument("--cache-dir", type=Path, default=None, help="the daemon's --cache-dir")
    parser.add_argument("--endpoint", default=None,
                        help="a daemon already running (its engine, threads and CPU flags are its own)")
    args = parser.parse_args(argv)

    cpu = this_cpu()
    load_s = None
    daemon = None
    if args.endpoint is None:
        env = environment(args.emulate)
        if args.threads:
            env["OMP_NUM_THREADS"] = str(args.threads)
        daemon_args = ["--model", args.model, "--engine", args.engine, "--device", "cpu", "--osc-port", "0",
                       "--zmq-port", "0", "--out", tempfile.mkdtemp(prefix="riffd-bench-"), "--log-level", "INFO",
                       "--no-warm-conform"]  # conform's warm-up (seconds of CPU) would run beside the job timed
        if args.cache_dir is not None:
            daemon_args += ["--cache-dir", str(args.cache_dir)]
        if args.codec_thread is not None:
            daemon_args += ["--codec-thread" if args.codec_thread else "--no-codec-thread"]
        started = time.perf_counter()
        daemon = DaemonChild(daemon_args, env=env, ready_timeout_s=1800)
        load_s = time.perf_counter() - started
    try:
        result = run_job(daemon.zmq if daemon else args.endpoint, args.prompt, args.duration,
                         None if daemon else args.model)
    finally:
        if daemon is not None:
            daemon.stop()
    choice = [line.split(": ", 1)[-1].strip() for line in (daemon.log if daemon else []) if "engine auto for" in line]
    # The daemon's own account of the first chunk (its log): request to first chunk on its side, and
    # where the stream spent it (the text encoder, prefill, steps, codec); the warm-up's is not the job's.
    first_chunk = [line.split(": ", 1)[-1].strip() for line in (daemon.log if daemon else [])
                   if "first chunk" in line and "warm-up" not in line]
    # ... and where the whole job's decode went (windows' prefills against steps).
    windows = [line.split(": ", 1)[-1].strip() for line in (daemon.log if daemon else [])
               if " window(s), prefills " in line and "warm-up" not in line]
    # The kernels' branch the daemon loaded (daemon.native's log line): an emulation's, or the CPU's own.
    kernels = [line.split("native kernels: ", 1)[-1].strip() for line in (daemon.log if daemon else [])
               if "riffd's native kernels: " in line and " branch (" in line]
    done: Done = result["done"]
    status = result["status"]
    isa = isa_label(args.emulate)
    rtf = result["audio_s"] / result["wall_s"]
    ratio = (done.late_step_ms / done.early_step_ms) if done.late_step_ms and done.early_step_ms else None
    codec_per_audio = done.codec_s / result["audio_s"] if done.codec_s is not None else None
    target = RTF_TARGET.get(args.emulate or cpu.isa)
    print(f"{args.model} through a daemon on {cpu.model} ({isa}, {cpu.cores} cores), engine {done.engine} "
          f"(--engine {args.engine}{'; ' + choice[0] if choice else ''})")
    if kernels:
        print(f"daemon: riffd's native kernels: {kernels[0]}")
    if load_s is not None:
        print(f"daemon ready after {load_s:.1f} s (load, calibration when not cached, warm-up)")
    print(f"{result['audio_s']:.1f} s of audio in {result['wall_s']:.1f} s: RTF {rtf:.3f} (target {target}), "
          f"first chunk after {result['ttfa_s']:.3f} s (target {TTFA_TARGET_S})")
    gaps = result["gaps"]
    median_gap_s = statistics.median(g for g, _ in gaps) if gaps else 0.0
    print("largest gaps between two chunks: " + ", ".join(f"{g:.3f} s (at audio {at:.1f} s)" for g, at in gaps[:3])
          + f"; median {median_gap_s:.3f} s")
    for line in first_chunk + windows:
        print(f"daemon: {line}")
    print(f"worker: decode {done.decode_s:.1f} s, codec {done.codec_s:.1f} s "
          f"({codec_per_audio:.3f} s per audio s); mean step early {done.early_step_ms} ms, late "
          f"{done.late_step_ms} ms (late/early {ratio:.2f}, target {LATE_EARLY_TARGET})" if ratio else
          f"worker: decode {done.decode_s} s, codec {done.codec_s} s")
    summary = {
        "rtf": round(rtf, 3),
        "ttfa_s": round(result["ttfa_s"], 3),
        "max_gap_s": round(gaps[0][0], 3) if gaps else None,
        "gap_at_s": round(gaps[0][1], 2) if gaps else None,
        "median_gap_s": round(median_gap_s, 3),
        "engine": done.engine or status.engine,
        "isa": isa,
        "kernels": kernels[0] if kernels else None,
        "codec_s_per_audio_s": None if codec_per_audio is None else round(codec_per_audio, 4),
        "late_step_ms": done.late_step_ms,
        "early_step_ms": done.early_step_ms,
        "late_early_ratio": None if ratio is None else round(ratio, 3),
        "decode_s": done.decode_s,
        "codec_s": done.codec_s,
        "wall_s": round(result["wall_s"], 3),
        "audio_s": round(result["audio_s"], 3),
        "load_s": None if load_s is None else round(load_s, 1),
        "daemon_first_chunk": first_chunk,
        "daemon_windows": windows,
        "cpu": cpu.model,
        "cores": cpu.cores,
        "threads": args.threads,
        "codec_thread": args.codec_thread,
        "model": args.model,
        "engine_setting": args.engine,
        "targets": {"rtf": target, "ttfa_s": TTFA_TARGET_S, "late_early_ratio": LATE_EARLY_TARGET},
        "met": {"rtf": target is not None and rtf >= target, "ttfa_s": result["ttfa_s"] <= TTFA_TARGET_S,
                "late_early_ratio": ratio is not None and ratio <= LATE_EARLY_TARGET},
    }
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
