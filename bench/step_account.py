"""Benchmark: where an early decode step's time goes in the daemon's own path, part by part, against each part's floor.

In this process, the way the daemon runs a job: the backend as `riffd serve` loads it (`--engine`,
continuous batching on, so a job's steps go through `StepBatch._step` as in the daemon), one
streamed job (`stream()` on a worker thread, the codec on the same thread between steps), and
every step at a window position below the daemon's "early" edge (the first tenth of a window,
`stream_timing.EDGE_FRACTION`) split into:

- the native step (`riffd_step_rows`), built with -DRIFFD_STEP_PROFILE (its own build folder):
  each projection kind (its bytes, achieved GB/s and floor at the read bandwidth measured in the
  same run), self- and cross-attention (floor: the cache bytes read), norms, GELU, residuals, and
  the pool's regions (how many a step, the caller's wait at their ends, the share of items the
  second thread ran);
- the Python around it: the inputs' embedding (`_native_inputs`), the binding and checks
  (`step_hidden`, `NativeModel.step`), sampling (native guidance + top-k, then the exponentials,
  softmax and race in one native pass), the delay pattern, and what is left of the batch's step (its bookkeeping);
  where the shared step is one call with its inputs and draws (step_draw.py), the native call is the step
  alone and the call's inputs and draws (timed inside it) count with the Python around, as they did as calls
  of their own;
- the time between two steps (the codec and the chunk hand-off on the same thread: not a step's
  time, shown apart), and the part of it outside the codec's pushes.

With `--riding` the job is long enough for a long-form seam (one window and 2 s), so the window's last
steps (from `longform`'s context start) carry the next window's context columns as rows of their own
(handoff.py): those "riding" steps get a column of their own beside the early ones, and the riding span's
mean step (`--ride-columns` k: k columns every k steps, the steps alone between them counted) with the
riding steps' mean and max; and the window's last tenth (the daemon's "late" steps) without riding rows
gets one too, its self-attention floor at its own mean position, so that what a late step costs splits into
its longer attention and the riding steps' extra. The self-attention floors count the cache's own bytes
(int8, or +kv4's 4-bit slots after its int8 head).

The profile's clock calls cost a little (compare profiled runs with each other). Prints the table
(part, ms a step, floor ms), then one JSON object as the last line.

    python -m bench.step_account [--engine int8] [--duration 8 | --riding [--ride-columns K] [--ride-stage N]] [--threads 2]
        [--emulate avx2] [--prompt TEXT] [--no-fold]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from bench.isa import add_cpu_arguments, apply_cpu_arguments, isa_label  # noqa: E402

STEP_PHASES = ("norms", "self_attention", "cross_attention", "gelu", "residuals", "qkv", "self_out", "cross_q",
               "cross_out", "fc1", "fc2", "lm_heads")  # decoder_step.c's enum order
PROJECTIONS = STEP_PHASES[5:]
POOL_COUNTERS = ("regions", "wait_ns", "caller_items", "worker_items")  # pool.c's enum order


class Account:
    """Seconds per named part of the step running now, one dict per step (its window position with it)."""

    def __init__(self) -> None:
        self.steps: list[dict[str, float]] = []
        self.current: dict[str, float] | None = None
        self.codec_s = 0.0  # the codec's pushes since the last step ended (they run between steps)

    def add(self, part: str, seconds: float) -> None:
        if self.current is not None:
            self.current[part] = self.current.get(part, 0.0) + seconds

    def timed(self, part: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.add(part, time.perf_counter() - start)
        return wrapper


class TimedLibrary:
    """The kernels' library with `riffd_step_rows` (and `riffd_step_rows_out`) timed and its profile read after each call."""

    def __init__(self, library: ctypes.CDLL, account: Account) -> None:
        self._library, self._account = library, account
        self._phases = (ctypes.c_double * len(STEP_PHASES))()
        self._pool = (ctypes.c_double * len(POOL_COUNTERS))()
        library.riffd_step_profile.argtypes = [ctypes.c_void_p, ctypes.c_int64]
        library.riffd_step_profile.restype = ctypes.c_int64
        library.riffd_pool_profile.argtypes = [ctypes.c_void_p, ctypes.c_int64]
        library.riffd_pool_profile.restype = ctypes.c_int64
        self._parts = (ctypes.c_double * 2)()  # riffd_step_draw's inputs and draws
        if hasattr(library, "riffd_step_draw_profile"):
            library.riffd_step_draw_profile.argtypes = [ctypes.c_void_p, ctypes.c_int64]
            library.riffd_step_draw_profile.restype = ctypes.c_int64
        self.clear()

    def clear(self) -> None:
        self._library.riffd_step_profile(self._phases, len(STEP_PHASES))
        self._library.riffd_pool_profile(self._pool, len(POOL_COUNTERS))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._library, name)

    def riffd_step_rows(self, *args: Any) -> None:
        self._timed(self._library.riffd_step_rows, args)

    def riffd_step_rows_out(self, *args: Any) -> None:  # a step with keys-only rows (--riding)
        self._timed(self._library.riffd_step_rows_out, args)

    def riffd_step_draw(self, *args: Any) -> int:
        """The step with its inputs and draws (step_draw.py): the native call is the step alone, its
        inputs' and draws' time (riffd_step_draw_profile) counted apart, as when they were calls of their own."""
        self._library.riffd_step_draw_profile(self._parts, len(self._parts))
        result = self._timed(self._library.riffd_step_draw, args)
        if self._library.riffd_step_draw_profile(self._parts, len(self._parts)) == len(self._parts):
            inputs_s, draws_s = self._parts[0] / 1e9, self._parts[1] / 1e9
            self._account.add("native_call", -inputs_s - draws_s)
            self._account.add("c.step_draw_inputs", inputs_s)
            self._account.add("c.step_draw_draws", draws_s)
        return int(result)

    def _timed(self, step: Any, args: tuple[Any, ...]) -> Any:
        self.clear()
        start = time.perf_counter()
        result = step(*args)
        self._account.add("native_call", time.perf_counter() - start)
        if self._library.riffd_step_profile(self._phases, len(STEP_PHASES)) != len(STEP_PHASES):
            raise SystemExit("the kernels were not built with -DRIFFD_STEP_PROFILE (a stale RIFFD_NATIVE_DIR?)")
        self._library.riffd_pool_profile(self._pool, len(POOL_COUNTERS))
        for name, ns in zip(STEP_PHASES, self._phases):
            self._account.add(f"c.{name}", ns / 1e9)
        for name, value in zip(POOL_COUNTERS, self._pool):
            self._account.add(f"pool.{name}", value)
        return result


def projection_bytes(model: Any) -> dict[str, int]:
    """Bytes a step reads for each projection kind (codes, row sums and scales) over every layer."""
    def nbytes(weights: Any) -> int:
        if not weights.packed:
            return 0
        return weights.rows * weights.cols * (1 if not weights.int4_group else 0.5) + (
            8 * weights.rows if not weights.int4_group else 4 * weights.rows * weights.cols // weights.int4_group)
    layers = [model._layers[i] for i in range(model._model.layers)]
    out = {name: int(sum(nbytes(getattr(layer, name)) for layer in layers)) for name in PROJECTIONS[:-1]}
    out["lm_heads"] = int(nbytes(model._model.lm_heads))
    return out


def instrument(backend: Any, account: Account) -> Any:
    """Wrap the daemon's step path of `backend` with `account`'s timers; returns the native model."""
    import daemon.models.musicgen.batch as batch_module
    import daemon.models.musicgen.loop as loop_module
    import daemon.models.musicgen.sampling as sampling_module
    import daemon.models.musicgen.streaming as streaming_module
    import daemon.native.sampling as native_sampling

    batch = backend.batch
    decoder = batch.decoder
    native = decoder.native
    if native is None:
        raise SystemExit(f"engine {backend.engine_name} has no native step here")
    step = batch._step

    def timed_step(streams: list[Any]) -> None:
        riding = sum(len(s.successor.due()) for s in streams if s.successor is not None)
        account.current = {"position": float(min(s.first_slot + s.step - 1 for s in streams)),
                           "riding": float(riding), "gap_codec": account.codec_s}
        account.codec_s = 0.0
        start = time.perf_counter()
        try:
            step(streams)
        finally:
            account.current["step"] = time.perf_counter() - start
            account.current["ended"] = time.perf_counter()
            account.steps.append(account.current)
            account.current = None

    batch._step = timed_step
    decoder.step_streams = account.timed("step_streams", decoder.step_streams)
    decoder._native_inputs = account.timed("inputs", decoder._native_inputs)
    native.step_hidden = account.timed("step_hidden", native.step_hidden)
    native.model.step = account.timed("model_step", native.model.step)
    native.model._functions = TimedLibrary(native.model._functions, account)
    if getattr(batch, "_step_draw", None) is not None:  # the shared step as one call (step_draw.py)
        batch._step_draw.columns = account.timed("step_draw", batch._step_draw.columns)
    batch_module.next_columns = account.timed("sampling", batch_module.next_columns)
    loop_module.guided_codes = account.timed("distribution", loop_module.guided_codes)
    # sampling.guided_codes calls these through their modules
    native_sampling.scores_into = account.timed("scores_native", native_sampling.scores_into)
    native_sampling.race = account.timed("race_native", native_sampling.race)
    native_sampling.draw = account.timed("draw_native", native_sampling.draw)
    sampling_module.exponentials = account.timed("exponentials", sampling_module.exponentials)
    sampling_module.race = account.timed("race", sampling_module.race)
    loop_module.WindowSampler.column = account.timed("pattern", loop_module.WindowSampler.column)  # type: ignore[method-assign]
    codec_stream = streaming_module.CodecStream
    for name in ("push", "finish"):
        setattr(codec_stream, name, codec_timed(account, getattr(codec_stream, name)))
    return native.model


def codec_timed(account: Account, fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn` (a codec push) with its seconds added to the codec's time since the last step."""
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            account.codec_s += time.perf_counter() - start
    return wrapper


def run_job(backend: Any, prompt: str, duration_s: float, seed: int) -> float:
    """One streamed job on a worker thread (as the daemon's runner does); its wall seconds."""
    from protocol.params import GenerationParams

    took: list[float] = []
    failed: list[BaseException] = []

    def work() -> None:
        started = time.perf_counter()
        try:
            for _ in backend.stream(prompt, GenerationParams(duration_s=duration_s, seed=seed), batched=True,
                                    label=f"job{seed}"):
                pass
        except BaseException as error:  # noqa: BLE001 - re-raised on the main thread
            failed.append(error)
        took.append(time.perf_counter() - started)

    worker = threading.Thread(target=work, name="job")
    worker.start()
    worker.join()
    if failed:
        raise failed[0]
    return took[0]


def cache_read_bytes(vectors: int, head_dim: int, positions: float, kv4: bool) -> float:
    """Bytes a step's self-attention reads from the cache over `positions` slots of `vectors` (layer,
    row, head) keys and as many values: int8 codes and a float32 scale a slot, or under +kv4 that for
    the window's int8 head (kv_cache.INT8_HEAD_POSITIONS) and 4-bit codes and a float16 scale after."""
    from daemon.models.musicgen.kv_cache import INT8_HEAD_POSITIONS

    if not kv4:
        return 2 * vectors * positions * (head_dim + 4)
    head = min(positions, INT8_HEAD_POSITIONS)
    return 2 * vectors * (head * (head_dim + 4) + (positions - head) * (head_dim / 2 + 2))


def account_table(among: list[dict[str, float]], model: Any, bandwidth: float,
                  floor_position: float, kv4: bool) -> list[tuple[str, float, float | None, str]]:
    """(part, ms a step, floor ms or None, note) over the steps `among`; the floors for one guided
    stream at `floor_position` (`kv4`: its cache's layout)."""
    def mean_ms(part: str) -> float:
        return 1e3 * statistics.fmean(s.get(part, 0.0) for s in among)

    def mean(part: str) -> float:
        return statistics.fmean(s.get(part, 0.0) for s in among)

    sizes = projection_bytes(model)
    rows = 2  # one guided stream
    heads, head_dim = model._model.heads, model._model.head_dim
    layers = model._model.layers
    mean_position = statistics.fmean(s["position"] for s in among)
    kv_bytes = cache_read_bytes(layers * rows * heads, head_dim, floor_position + 1, kv4)
    table: list[tuple[str, float, float | None, str]] = []
    for name in PROJECTIONS:
        ms = mean_ms(f"c.{name}")
        floor = sizes[name] / bandwidth / 1e6
        rate = f"{sizes[name] / ms / 1e6:.1f} GB/s" if ms > 0 else "not read (the condition folded: cross-attention)"
        table.append((f"product {name}", ms, floor, f"{sizes[name] / 1e6:.1f} MB, {rate}"))
    products = sum(row[1] for row in table)
    table.append(("products, all", products, sum(row[2] or 0 for row in table),
                  f"{sum(sizes.values()) / 1e6:.0f} MB at {sum(sizes.values()) / products / 1e6:.1f} GB/s"))
    table.append(("self-attention (+ cache write)", mean_ms("c.self_attention"), kv_bytes / bandwidth / 1e6,
                  f"mean position {mean_position:.0f}, {kv_bytes / 1e6:.1f} MB of {'4-bit' if kv4 else 'int8'} K/V at {floor_position:.0f}"))
    table.append(("cross-attention", mean_ms("c.cross_attention"), None, "conditional row only (null rows are +0)"))
    table.append(("norms", mean_ms("c.norms"), None, f"{3 * layers + 1} a step, serial"))
    table.append(("GELU", mean_ms("c.gelu"), None, "serial"))
    table.append(("residuals", mean_ms("c.residuals"), None, ""))
    phases = sum(mean_ms(f"c.{name}") for name in STEP_PHASES)
    table.append(("native: outside the phases", mean_ms("native_call") - phases, 0.0, "loop, profile clocks"))
    regions = mean("pool.regions")
    items = mean("pool.caller_items") + mean("pool.worker_items")
    table.append(("  of which: pool end-waits", 1e-6 * mean("pool.wait_ns"), 0.0,
                  f"{regions:.0f} regions a step; the second thread ran "
                  f"{100 * mean('pool.worker_items') / max(items, 1):.0f} % of the items"))
    table.append(("native call (riffd_step_rows)", mean_ms("native_call"), None, ""))
    table.append(("NativeModel.step around it", mean_ms("model_step") - mean_ms("native_call") if mean_ms("model_step") else 0.0, 0.0,
                  "logits tensor, lock, scratch size (and the profile's reading)"))
    table.append(("step_hidden around it", mean_ms("step_hidden") - mean_ms("model_step"), 0.0,
                  "checks, row batch, positions"))
    table.append(("inputs (embedding)", mean_ms("inputs"), None, "4 codebook rows gathered and summed"))
    table.append(("step_streams around it", mean_ms("step_streams") - mean_ms("step_hidden") - mean_ms("inputs"), 0.0,
                  "logits views"))
    table.append(("sampling: guidance + top-k (native, top-p)", mean_ms("scores_native"), None, "4 x 2048 scores"))
    table.append(("sampling: a window's whole draw (native)", mean_ms("draw_native"), None,
                  "no top-p: guidance, top-k, exponentials from the torch generator's state, softmax, race"))
    table.append(("sampling: the race after top-p (native)", mean_ms("race_native"), None,
                  "exponentials, softmax and race"))
    table.append(("sampling: glue", mean_ms("distribution") - mean_ms("scores_native") - mean_ms("race_native")
                  - mean_ms("draw_native") - mean_ms("exponentials") - mean_ms("race"), None,
                  "top-p, softmax where PyTorch races"))
    table.append(("one call: its inputs (native)", mean_ms("c.step_draw_inputs"), None,
                  "riffd_step_draw's embedding (step_draw.py)"))
    table.append(("one call: its draws (native)", mean_ms("c.step_draw_draws"), None,
                  "riffd_step_draw's guidance, top-k, exponentials, softmax, race"))
    table.append(("one call: StepDraw.columns around it", mean_ms("step_draw") - mean_ms("native_call")
                  - mean_ms("c.step_draw_inputs") - mean_ms("c.step_draw_draws") if mean_ms("step_draw") else 0.0, 0.0,
                  "checks, feeds, generator states, codes"))
    table.append(("sampling: exponentials (PyTorch's path)", mean_ms("exponentials"), None, "torch generator"))
    table.append(("sampling: race (PyTorch's path)", mean_ms("race"), None, "p / E, argmax"))
    table.append(("delay pattern", mean_ms("pattern"), None, ""))
    # the pattern runs inside next_columns, or after the one call (step_draw.py) outside it
    sampled = mean_ms("distribution") + (0.0 if mean_ms("step_draw") else mean_ms("pattern"))
    table.append(("sampling: the rest of next_columns", mean_ms("sampling") - sampled, 0.0, ""))
    table.append(("batch step's bookkeeping", mean_ms("step") - mean_ms("step_streams") - mean_ms("sampling")
                  - mean_ms("step_draw") - mean_ms("pattern") * bool(mean_ms("step_draw")), 0.0,
                  "actions, timing, the hand-off's columns"))
    around = [(1e3 * (s.get("step", 0.0) - s.get("native_call", 0.0)), s["position"]) for s in among]
    slowest = max(around)
    table.append(("Python around the native call", mean_ms("step") - mean_ms("native_call"), 0.0,
                  f"all of the above outside riffd_step_rows; median {statistics.median(a for a, _ in around):.3f} ms, "
                  f"max {slowest[0]:.2f} at position {slowest[1]:.0f}"))
    table.append(("STEP (as the daemon times it)", mean_ms("step"), sum(sizes.values()) / bandwidth / 1e6 +
                  kv_bytes / bandwidth / 1e6, f"{len(among)} steps, median {1e3 * statistics.median(s['step'] for s in among):.2f} ms"))
    return table


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="random/musicgen-small")
    parser.add_argument("--engine", default="int8")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds of audio in each job")
    parser.add_argument("--riding", action="store_true",
                        help="jobs of one window and 2 s: the window's last steps carry the next window's rows")
    parser.add_argument("--ride-columns", type=int, default=None,
                        help="with --riding: context columns a riding step takes (handoff.RIDE_COLUMNS; k every k steps)")
    parser.add_argument("--ride-stage", type=int, default=None,
                        help="with --riding: handoff.RIDE_STAGE_POSITIONS (0: the context rides the window-sized cache)")
    parser.add_argument("--jobs", type=int, default=2, help="jobs in a row (the first one's steps are warm-up)")
    add_cpu_arguments(parser, threads_help="torch's and the kernels' threads")
    parser.add_argument("--prompt", default="80s pop track with bassy drums and synth")
    parser.add_argument("--no-fold", action="store_true",
                        help="the prompt takes the cross-attention's projections even where it folds (folded_condition.py)")
    args = parser.parse_args(argv)
    # First: the emulation's variables replace RIFFD_NATIVE_CFLAGS in the re-executed process, and the
    # profile's flag joins them there.
    apply_cpu_arguments(args, "bench.step_account")
    os.environ["RIFFD_NATIVE_CFLAGS"] = f"{os.environ.get('RIFFD_NATIVE_CFLAGS', '')} -DRIFFD_STEP_PROFILE".strip()
    os.environ.setdefault("RIFFD_NATIVE_DIR", str(Path.home() / ".cache" / "riffd" / "native-profile"))

    import torch

    from bench.native_step import read_bandwidth_gb_s
    from daemon.models.musicgen.stream_timing import EDGE_FRACTION
    from daemon.models.musicgen.backend import MusicGen
    from daemon.models.registry import load_backend
    from daemon.native import isa
    from daemon.native.branches import cpu_name
    from daemon.residency import freeze_resident

    if args.ride_columns is not None:
        from daemon.models.musicgen import handoff
        handoff.RIDE_COLUMNS = args.ride_columns
    if args.ride_stage is not None:
        from daemon.models.musicgen import handoff
        handoff.RIDE_STAGE_POSITIONS = args.ride_stage
    if args.no_fold:
        from daemon.models.musicgen import folded_condition
        folded_condition.FOLD_CONDITION = False
    backend = load_backend(args.model, device="cpu", engine=args.engine)
    # The model's objects out of the collector's full scans, as the daemon's load does (a full collection
    # over the loaded model, 75-190 ms, landing in a step made a run's means jump).
    freeze_resident()
    if not isinstance(backend, MusicGen):
        raise SystemExit(f"{args.model} is not a MusicGen model")
    account = Account()
    model = instrument(backend, account)
    edge = max(1, int(backend.bundle.window_frames * EDGE_FRACTION))
    duration_s = backend.bundle.window_frames / backend.bundle.frame_rate + 2.0 if args.riding else args.duration
    bandwidth = read_bandwidth_gb_s()
    walls = []
    for job in range(args.jobs):
        if job == args.jobs - 1:
            account.steps.clear()
        walls.append(run_job(backend, args.prompt, duration_s, seed=job))
    bandwidth = max(bandwidth, read_bandwidth_gb_s())
    steps = account.steps
    kv4 = "kv4" in backend.engine_name.split("+")[1:]
    early = [s for s in steps if s["position"] < edge and not s["riding"]]
    riding = [s for s in steps if s["riding"]]
    # The window's last tenth (the daemon's "late" edge), its steps alone: what a late step costs
    # beside the riding ones' extra.
    late_from = backend.bundle.window_frames - edge
    late = [s for s in steps if late_from <= s["position"] < backend.bundle.window_frames and not s["riding"]]
    pairs = list(zip(steps, steps[1:]))
    gaps = [b["ended"] - b["step"] - a["ended"] for a, b in pairs]
    outside_codec = [gap - b["gap_codec"] for gap, (_, b) in zip(gaps, pairs)]
    into_riding = [(gap, gap - b["gap_codec"]) for gap, (_, b) in zip(gaps, pairs) if b["riding"]]
    mean_position = statistics.fmean(s["position"] for s in early)
    table = account_table(early, model, bandwidth, mean_position, kv4)
    table.append(("between steps (codec, hand-off)", 1e3 * statistics.fmean(gaps), None,
                  f"median {1e3 * statistics.median(gaps):.2f} ms; not a step's time"))
    table.append(("  of which outside the codec's pushes", 1e3 * statistics.fmean(outside_codec), None,
                  f"median {1e3 * statistics.median(outside_codec):.3f} ms; chunks handed on, frames, next()"))
    riding_table = account_table(riding, model, bandwidth, mean_position, kv4) if riding else []
    if into_riding:
        riding_table.append(("between steps (codec, hand-off)", 1e3 * statistics.fmean(g for g, _ in into_riding),
                             None, ""))
        riding_table.append(("  of which outside the codec's pushes",
                             1e3 * statistics.fmean(o for _, o in into_riding), None, ""))
    riding_ms = {part: ms for part, ms, _, _ in riding_table if ms is not None}
    late_position = statistics.fmean(s["position"] for s in late) if late else None
    late_table = account_table(late, model, bandwidth, late_position, kv4) if late_position is not None else []
    late_ms = {part: (ms, limit) for part, ms, limit, _ in late_table if ms is not None}
    regions = statistics.fmean(s.get("pool.regions", 0.0) for s in early)
    # The riding span: as many steps as context columns rode, up to the last riding step (with k columns
    # every k steps its steps alone count too; the BOS column, fed at the window's start, apart).
    ridden = [i for i, s in enumerate(steps) if s["riding"]]
    fed = int(sum(s["riding"] for s in steps))
    span = [1e3 * s["step"] for s in steps[max(0, ridden[-1] + 1 - fed):ridden[-1] + 1]] if ridden else []
    riding_steps_ms = [1e3 * s["step"] for s in riding]

    print(f"CPU: {cpu_name()} ({isa_label(args.emulate)}), kernels {isa()}, {torch.get_num_threads()} threads, engine {backend.engine_name}; "
          f"read bandwidth {bandwidth:.1f} GB/s; load {os.getloadavg()[0]:.1f}; jobs {walls}; "
          f"{len(early)} early steps, {len(riding)} riding (the next window's rows in them)")
    if span:
        print(f"riding span: {len(span)} steps, mean {statistics.fmean(span):.3f} ms; its riding steps mean "
              f"{statistics.fmean(riding_steps_ms):.3f} ms, max {max(riding_steps_ms):.3f} "
              f"({args.ride_columns or 'default'} columns a riding step)")
    if late:
        print(f"late steps alone (positions {late_from}..{backend.bundle.window_frames - 1}): {len(late)}, "
              f"mean position {late_position:.0f}")
    print(f"{'part':40} {'ms':>7} {'floor':>7} {'riding':>7} {'late':>7} {'floor':>7}  note")
    for part, ms, limit, note in table:
        ride = riding_ms.get(part)
        late_ms_part, late_limit = late_ms.get(part, (None, None))
        print(f"{part:40} {ms:7.3f} {'' if limit is None else f'{limit:7.3f}':>7} "
              f"{'' if ride is None else f'{ride:7.3f}':>7} {'' if late_ms_part is None else f'{late_ms_part:7.3f}':>7} "
              f"{'' if late_limit is None else f'{late_limit:7.3f}':>7}  {note}")
    summary = {"cpu": cpu_name(), "isa": isa(), "emulated": args.emulate, "isa_class": isa_label(args.emulate),
               "threads": torch.get_num_threads(), "engine": backend.engine_name,
               "bandwidth_gb_s": round(bandwidth, 2), "load": round(os.getloadavg()[0], 2), "early_steps": len(early),
               "riding_steps": len(riding), "ride_columns": args.ride_columns,
               "riding_span_step_ms": round(statistics.fmean(span), 3) if span else None,
               "riding_step_ms": round(statistics.fmean(riding_steps_ms), 3) if span else None,
               "riding_step_max_ms": round(max(riding_steps_ms), 3) if span else None,
               "parts_ms": {part: round(ms, 3) for part, ms, _, _ in table},
               "riding_parts_ms": {part: round(ms, 3) for part, ms in riding_ms.items()},
               "late_steps": len(late), "late_parts_ms": {part: round(ms, 3) for part, (ms, _) in late_ms.items()},
               "late_floors_ms": {part: round(limit, 3) for part, (_, limit) in late_ms.items() if limit is not None},
               "floors_ms": {part: round(limit, 3) for part, _, limit, _ in table if limit is not None},
               "regions_per_step": round(regions, 1), "steps": len(steps)}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
