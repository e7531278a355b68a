"""Benchmark: a streamed job with its decode and codec on one thread (today's default) against the
decode running ahead on a thread of its own (`--codec-thread`), in one process, rounds alternating.

Each configuration streams the same seeded job through `MusicGen.stream` on a worker thread (as
the daemon does) and is timed from the request to the last chunk: wall seconds, first chunk,
decode and codec seconds as the stream reports them, and the process's CPU seconds. Torch and
riffd's kernels run on `T` threads for the decode, as `OMP_NUM_THREADS=T` would set them in a
daemon, and on `C` for the codec side:

    serial:T       decode and codec one after the other on the job's thread
    ahead:T        decode on its own thread, codec on the job's thread (with T=1 on 2 cores, a core each)
    ahead:T/C@N    the same, the codec's thread on C threads at nice N (meant to leave its core to
                   the decode, the critical path; but a niced thread that loses its CPU while it
                   holds the GIL holds the decode's Python up too)

Ratios are against serial at the process's default threads measured in the same round (the
machine is shared and noisy: compare ratios, not seconds). The chunks of every configuration must
be the very same samples at one pair of thread counts, decode's and codec's (the run fails if not;
PyTorch's float products in the codec round differently on another thread count, so a `/C`
configuration streams other samples than serial). Prints one JSON object last.

    python -m bench.codec_overlap [--model random/musicgen-small] [--engine int8a8+kv4] [--duration 8]
        [--rounds 3] [--configs serial:2,ahead:2,ahead:1,ahead:2@19] [--threads N] [--emulate avx2]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import daemon  # noqa: E402,F401  (OMP_WAIT_POLICY before torch loads)
import torch  # noqa: E402

from daemon.cpu import this_cpu  # noqa: E402
from daemon.models.musicgen import ahead as ahead_module  # noqa: E402
from daemon.models.musicgen.backend import MusicGen  # noqa: E402
from daemon.models.musicgen.loader import load_folder  # noqa: E402
from daemon.models.musicgen.options import EngineOptions  # noqa: E402
from daemon.models.registry import default_cache_dir, resolve_folder  # noqa: E402
from bench.isa import add_cpu_arguments, apply_cpu_arguments, isa_label  # noqa: E402
from protocol.params import GenerationParams  # noqa: E402


def _decode_threads_follow(threads: list[int]) -> None:
    """Each decode thread `Ahead` starts runs torch and riffd's kernels on `threads[0]` threads (read
    when it starts), as every thread of a daemon started with OMP_NUM_THREADS would."""
    start = ahead_module.Ahead.__init__

    def init(self, make, **kwargs):
        count = threads[0]

        def made():
            torch.set_num_threads(count)
            return make()

        start(self, make=made, **kwargs)

    ahead_module.Ahead.__init__ = init  # type: ignore[method-assign]


@dataclass(frozen=True)
class Config:
    """One way to run the job: `mode` serial or ahead, the decode's threads, the codec side's
    threads and its thread's nice value (ahead only: serial runs both on one thread)."""

    mode: str
    threads: int
    codec_threads: int
    codec_nice: int

    @property
    def name(self) -> str:
        name = f"{self.mode}:{self.threads}"
        if self.codec_threads != self.threads:
            name += f"/{self.codec_threads}"
        return name + (f"@{self.codec_nice}" if self.codec_nice else "")


def _parse_config(item: str, parser: argparse.ArgumentParser) -> Config:
    """MODE:T[/C][@N]: decode on T threads, the codec on C (default T) at nice N (default 0)."""
    match = re.fullmatch(r"(serial|ahead):(\d+)(?:/(\d+))?(?:@(\d+))?", item)
    if match is None or int(match[2]) < 1 or (match[3] is not None and int(match[3]) < 1):
        parser.error(f"--configs: {item!r} is not MODE:T[/C][@N] with MODE serial or ahead")
    mode, threads = match[1], int(match[2])
    codec_threads, nice = int(match[3] or threads), int(match[4] or 0)
    if mode == "serial" and (codec_threads != threads or nice):
        parser.error(f"--configs: {item!r}: serial runs decode and codec on one thread (no /C or @N)")
    return Config(mode, threads, codec_threads, nice)


def _one_job(model: MusicGen, config: Config, params: GenerationParams, prompt: str) -> dict[str, Any]:
    result: dict[str, Any] = {}

    def run() -> None:
        torch.set_num_threads(config.codec_threads)
        if config.codec_nice:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), config.codec_nice)
        model.codec_thread = config.mode == "ahead"
        started, cpu_started = time.perf_counter(), time.process_time()
        first_s = None
        digest = hashlib.sha256()
        stream = model.stream(prompt, params, batched=True, label="bench")
        try:
            while True:
                chunk = next(stream)
                if first_s is None:
                    first_s = time.perf_counter() - started
                digest.update(chunk.audio.tobytes())
        except StopIteration as stop:
            report = stop.value
        result.update(wall_s=time.perf_counter() - started, cpu_s=time.process_time() - cpu_started,
                      ttfa_s=first_s, decode_s=report.decode_s, codec_s=report.codec_s,
                      step_ms=1000 * report.step_s / max(report.steps, 1), audio=digest.hexdigest())

    worker = threading.Thread(target=run, name="bench job")
    worker.start()
    worker.join()
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="random/musicgen-small")
    parser.add_argument("--engine", default="int8a8+kv4", help="engine mode (auto's pick on AVX-512 VNNI: int8a8+kv4; on AVX2, emulated: int8+kv4)")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds of audio per job")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--configs", default="serial:2,ahead:2,ahead:1,ahead:2@19",
                        help="comma-separated MODE:T[/C][@N]: MODE serial or ahead, the decode on T threads, "
                             "the codec on C (default T) at nice N (ahead only)")
    parser.add_argument("--prompt", default="80s pop track with bassy drums and synth")
    parser.add_argument("--cache-dir", type=Path, default=None)
    add_cpu_arguments(parser)
    args = parser.parse_args(argv)
    apply_cpu_arguments(args, "bench.codec_overlap")
    configs = [_parse_config(item.strip(), parser) for item in args.configs.split(",")]
    default_threads = torch.get_num_threads()
    baseline = Config("serial", default_threads, default_threads, 0)
    if baseline not in configs:
        configs.insert(0, baseline)

    folder = resolve_folder(args.model, cache_dir=args.cache_dir or default_cache_dir())
    bundle = load_folder(folder, model_id=args.model, device=torch.device("cpu"))
    model = MusicGen(bundle, engine=EngineOptions.parse(args.engine))
    cpu = this_cpu()
    params = GenerationParams(duration_s=args.duration, seed=0)
    isa = isa_label(args.emulate)
    print(f"{args.model} {args.engine} on {cpu.describe()} ({isa}), {default_threads} threads by default; "
          f"{args.duration:g} s jobs, {args.rounds} rounds", flush=True)

    current_threads = [default_threads]
    _decode_threads_follow(current_threads)

    runs: dict[str, list[dict[str, Any]]] = {config.name: [] for config in configs}
    ratios: dict[str, list[float]] = {name: [] for name in runs}
    # Per decode and codec thread counts: float products may round differently on other counts.
    audio: dict[tuple[int, int], set[str]] = {}
    for round_index in range(args.rounds):
        walls = {}
        for config in configs:
            name = config.name
            current_threads[0] = config.threads
            run = _one_job(model, config, params, args.prompt)
            run["load"] = float(Path("/proc/loadavg").read_text().split()[0])
            runs[name].append(run)
            walls[name] = run["wall_s"]
            audio.setdefault((config.threads, config.codec_threads), set()).add(run["audio"])
            print(f"round {round_index + 1} {name:>9}: wall {run['wall_s']:6.2f} s  first chunk {run['ttfa_s']:.3f} s  "
                  f"decode {run['decode_s']:6.2f} s  codec {run['codec_s']:5.2f} s  step {run['step_ms']:5.1f} ms  "
                  f"cpu {run['cpu_s']:6.2f} s  load {run['load']:.1f}  audio {run['audio'][:8]}", flush=True)
        for name in runs:
            ratios[name].append(walls[baseline.name] / walls[name])
    for threads, versions in audio.items():
        if len(versions) != 1:
            raise SystemExit(f"serial and ahead streamed different audio on {threads} (decode, codec) threads")

    def median(name: str, key: str) -> float:
        return round(statistics.median(r[key] for r in runs[name]), 3)

    summary = {
        "model": args.model, "engine": args.engine, "cpu": cpu.describe(), "isa": isa,
        "default_threads": default_threads,
        "duration_s": args.duration, "rounds": args.rounds, "baseline": baseline.name,
        "same_audio": True,
        "speedup_vs_baseline": {name: round(statistics.median(values), 3) for name, values in ratios.items()},
        "rtf": {name: round(args.duration / median(name, "wall_s"), 3) for name in runs},
        "ttfa_s": {name: median(name, "ttfa_s") for name in runs},
        "step_ms": {name: median(name, "step_ms") for name in runs},
        "codec_s_per_audio_s": {name: round(median(name, "codec_s") / args.duration, 3) for name in runs},
        "cpu_s_per_audio_s": {name: round(median(name, "cpu_s") / args.duration, 3) for name in runs},
        "load": round(statistics.mean(r["load"] for rs in runs.values() for r in rs), 2),
    }
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
