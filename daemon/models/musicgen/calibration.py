"""Measuring engine modes on this machine for `--engine auto`: decode rate and agreement with float32.

Short on purpose (it runs at a daemon's first load of a model on a CPU, then comes from the
cache): each mode decodes `speed_frames` sampled columns of one prompt, the way a request runs
(top-k 250, guidance 3), timed over the whole loop so speculative bursts count fairly; then it
is fed float32's greedy columns of a two-prompt batch and scored on how many of its greedy codes
are float32's (`agreement.forced_scores`, the same comparison the bench and the tests make).
float32 is timed first and last and keeps its better run, so a noisy moment cannot make
another mode look faster than it is. The modes on riffd's kernels that keep the bar, the ones auto
weighs against each other, are timed again taking turns (`_rematch`): a shared host's memory
bandwidth moves within seconds, and modes timed one after the other would be compared at different
moments.

Each mode that could be picked also times what a long job costs it beyond its early steps. On riffd's
native step that is a 60 s job (`LONG_JOB_S`) as the daemon runs it (job_steps.py): its windows' steps
alone, later in their positions than the early ones `_rate` times, and the steps the next window rides
(handoff.py: its context rows at their own positions from 0, keys only in their last layer, beside the
window's two rows late in its positions), each kind timed at its mean positions in one `step_streams`
call as `StepBatch._step` makes it, the modes taking turns; the modes compare on those steps (what the
decode loop adds to a step, sampling and Python, is the same in each). A riding step is not a step
of four rows at one position (keys only in the riding rows' last layer, the window's rows late in their
positions, the riding cache in its stage view), which is how riding was timed before. With AVX2
emulated on the Zen 4 the two ways disagree little: a 60 s job's native steps, the modes taking turns
(bench.job_steps_ab), put int8a8+kv4 at 0.99 times int8+kv4's a frame, a tie, and the daemon runs of
int8 at rtf 1.125 and int8a8 at 0.962 that had pointed at the pick were the host's minutes. Elsewhere (no hand-off), the window's prefill of its 600 context frames, once per the
900 new frames such a window makes. `engine_choice` counts it in the mode's cost per frame.

The mode picked, where it runs on riffd's native step, is also timed late in a window (`LATE_POSITION`), with the int8 cache
and with the 4-bit one (`+kv4`), taking turns: +kv4 differs from the int8 cache only there (its
window's first `kv_cache.INT8_HEAD_POSITIONS` positions are int8, so its first frames are the int8
cache's very steps, and its agreement over them the int8 cache's). The late steps run over slots
filled with random codes: a step's time does not depend on their values, and decoding 1500 frames
to get there would cost ~30 s a mode.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import logging
import math
import statistics
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass

import torch

from daemon.models.musicgen.agreement import forced_scores, greedy_agreement
from daemon.models.musicgen.conditioning import Conditioning, build_conditioning
from daemon.models.musicgen.engine import MusicgenEngine
from daemon.models.musicgen.engine_choice import (
    MIN_AGREEMENT, MIN_SPEEDUP, Calibration, ModeMeasurement, choose, context_could_matter,
)
from daemon.models.musicgen.loader import MusicgenBundle
from daemon.models.musicgen.decoder import MusicgenDecoder
from daemon.models.musicgen.delay import delay_steps
from daemon.models.musicgen.handoff import (
    RIDE_STAGE_POSITIONS, cache_positions, hands_off, share_condition, stage_view,
)
from daemon.models.musicgen.job_steps import job_steps
from daemon.models.musicgen.kv_cache import KVCache
from daemon.models.musicgen.longform import Window, plan_windows, stride_frames
from daemon.models.musicgen.loop import plan_window
from daemon.seeds import seeded_rng
from daemon.models.musicgen.options import EngineOptions
from protocol.params import GenerationParams

log = logging.getLogger(__name__)

#: The cache position late steps are timed at: a 30 s window's last frames, where the cache is a
#: third of an int8 step's read (docs/realtime-log.md).
LATE_POSITION = 1500
#: Late steps timed per run, and runs (the best counts; the int8 and 4-bit caches take turns).
LATE_STEPS, LATE_RUNS = 12, 3
#: The long-form job whose cost a frame auto weighs on riffd's step (`_job_costs`): the issue's 60 s job
#: (bench.realtime): musicgen's three windows at the default stride, 1200 of its ~3000 steps riding.
LONG_JOB_S = 60.0
#: Where an early step is timed beside the job's (`_job_costs`: what the decode loop adds to a step): within
#: `_rate`'s window.
EARLY_POSITION = 16
#: Runs of `LATE_STEPS` a step of the job is timed in (the best counts): in one process on the Zen 4 KVM
#: (AVX2 emulated) the ratio of int8a8's job to int8's estimated this way spread 0.986-1.013 over four
#: calibrations' worth with 6 runs, 0.91-1.00 with 3; each run costs ~1 s for two modes.
JOB_RUNS = 5
#: Rounds in which the native modes that keep the bar, the ones auto weighs against each other, are
#: timed again taking turns (`_rematch`).
REMATCH_ROUNDS = 3

#: Prompts of the agreement batch: two, so one prompt's quirks do not decide.
PROMPTS = ("80s pop track with bassy drums and synth", "calm piano over soft strings")
GUIDANCE_SCALE = 3.0


def calibrate(bundle: MusicgenBundle, modes: Sequence[str], *, key: str, machine: str, speed_frames: int = 32,
              agreement_frames: int = 24) -> Calibration:
    """Measure each of `modes` (float32 always, first and last) on `bundle`'s device.

    Three passes: each mode's step rate and agreement (the native modes that keep the bar timed
    again taking turns); then the long-form window context of the native ones, taking turns, and,
    fastest first, of each other mode that could still be picked (`engine_choice.context_could_matter`);
    then, for the mode `choose` picks from those, its late steps with the int8 and the 4-bit cache.
    Modes on riffd's kernels that keep the bar are kept built between the passes (~0.4 GB each);
    others are built again if their prefill is wanted.
    """
    started = time.perf_counter()
    reference = MusicgenEngine(bundle, EngineOptions(warmup=False))
    batch = build_conditioning(bundle, list(PROMPTS), guidance_scale=GUIDANCE_SCALE)
    single = build_conditioning(bundle, list(PROMPTS[:1]), guidance_scale=GUIDANCE_SCALE)
    greedy = GenerationParams(duration_s=agreement_frames / bundle.frame_rate, greedy=True,
                              guidance_scale=GUIDANCE_SCALE)
    with torch.inference_mode():
        columns = torch.stack(list(reference.columns(batch, None, agreement_frames, greedy, None)), dim=-1)
    want = forced_scores(reference, batch, columns, GUIDANCE_SCALE).argmax(-1)
    float32_rates = [_rate(reference, single, speed_frames)]
    measurements: dict[str, ModeMeasurement] = {}
    kept: dict[str, MusicgenEngine] = {}  # native modes that keep the bar: wanted again below
    for mode in modes:
        if mode == "float32":
            continue
        options = EngineOptions.parse(mode)
        engine = MusicgenEngine(bundle, dataclasses.replace(options, warmup=False))
        rate = _rate(engine, single, speed_frames)
        # Speculative decoding keeps float32's distribution, and greedy its very codes
        # (tests/musicgen/test_speculative.py): its agreement is float32's own.
        agreement = 1.0 if options.draft else greedy_agreement(engine, batch, columns, want, GUIDANCE_SCALE)
        log.info("engine calibration, %s: %s %.1f steps/s, %.1f %% greedy agreement with float32",
                 bundle.model_id, mode, rate, 100 * agreement)
        measurements[mode] = ModeMeasurement(mode, rate, agreement)
        if engine.decoder.native is not None and not options.kv4 and not options.draft and agreement >= MIN_AGREEMENT:
            kept[mode] = engine
        del engine
        gc.collect()
    _rematch(kept, single, speed_frames, measurements)
    float32_rates.append(_rate(reference, single, speed_frames))
    float32_rate = max(float32_rates)
    log.info("engine calibration, %s: float32 %.1f steps/s (best of %s)", bundle.model_id, float32_rate,
             ", ".join(f"{r:.1f}" for r in float32_rates))
    del reference
    gc.collect()

    # The windows' contexts, fastest steps first: once one is timed, a mode whose steps alone are
    # slower than that frame (within TIE_BAND) cannot be picked, and its context is not timed.
    candidates = sorted((m for m in measurements.values()
                         if m.token_agreement >= MIN_AGREEMENT and m.steps_per_s >= MIN_SPEEDUP * float32_rate),
                        key=lambda m: m.steps_per_s, reverse=True)
    # The native modes' long jobs are timed together, taking turns (like their steps: `_rematch`).
    riding = [m for m in candidates if m.mode in kept and hands_off(kept[m.mode].decoder, single)]
    jobs = _job_costs({m.mode: kept[m.mode] for m in riding}, single, {m.mode: m.steps_per_s for m in riding})
    best_frame_s: float | None = None
    for measured in candidates:
        if measured.mode in jobs:
            context_s, new_frames, how = jobs[measured.mode]
        elif not context_could_matter(1.0 / measured.steps_per_s, best_frame_s):
            continue
        else:
            engine = MusicgenEngine(bundle, dataclasses.replace(EngineOptions.parse(measured.mode), warmup=False))
            context_s, new_frames, how = _context_s(engine, single, measured.steps_per_s)
            del engine
        measured = dataclasses.replace(measured, context_s=context_s, context_new_frames=new_frames)
        log.info("engine calibration, %s: %s long-form extra %.2f s (%s) per %d new frames: %s", bundle.model_id,
                 measured.mode, context_s, how, new_frames, measured.describe_rate())
        measurements[measured.mode] = measured
        best_frame_s = min(measured.frame_s, best_frame_s or math.inf)
        gc.collect()

    float32 = ModeMeasurement("float32", float32_rate, 1.0)
    ordered = [measurements[mode] for mode in modes if mode in measurements]
    # +kv4 differs from the int8 cache only late in a window, and only for the mode picked.
    picked = choose(Calibration(key=key, model_id=bundle.model_id, machine=machine,
                                measurements=(float32, *ordered), seconds=0.0)).mode
    engine = kept.get(picked)
    kept.clear()
    if engine is not None:
        kv4 = MusicgenEngine(bundle, dataclasses.replace(engine.options, kv4=True, warmup=False))
        late, late4 = _late_rates([engine, kv4], single)
        agreement4 = greedy_agreement(kv4, batch, columns, want, GUIDANCE_SCALE)
        log.info("engine calibration, %s: %s late (position %d) %.1f steps/s, +kv4 %.1f steps/s and %.1f %% "
                 "greedy agreement", bundle.model_id, picked, late_position(engine), late, late4, 100 * agreement4)
        measurements[picked] = dataclasses.replace(measurements[picked], late_steps_per_s=late,
                                                   kv4_late_steps_per_s=late4, kv4_token_agreement=agreement4)
        del kv4, engine
        gc.collect()
    return Calibration(key=key, model_id=bundle.model_id, machine=machine,
                       measurements=(float32, *(measurements[mode] for mode in modes if mode in measurements)),
                       seconds=time.perf_counter() - started)


def late_position(engine: MusicgenEngine) -> int:
    """Where late steps are timed: `LATE_POSITION`, or the model's last positions if it has fewer."""
    return _timed_position(engine, LATE_POSITION)


def _timed_position(engine: MusicgenEngine, wanted: int) -> int:
    """`wanted`, or the last position from which `LATE_STEPS` steps still fit the model's positions."""
    return max(0, min(wanted, engine.decoder.weights.max_positions - LATE_STEPS))


def _late_rates(engines: Sequence[MusicgenEngine], cond: Conditioning) -> list[float]:
    """Each engine's decode steps per second at `LATE_POSITION` (or its model's last positions)."""
    position = late_position(engines[0])
    return _step_rates([_Steps(engine, cond, position) for engine in engines], 0)


@dataclass(frozen=True)
class _Steps:
    """Decode steps to time: `engine`'s window of `cond` stepping from cache `position`; with
    `context_position`, the next window's context rows riding those steps from that position, as
    the daemon runs them (handoff.py)."""

    engine: MusicgenEngine
    cond: Conditioning
    position: int
    context_position: int | None = None


@torch.inference_mode()
def _step_rates(runs: Sequence[_Steps], cache_positions: int, best_of: int = LATE_RUNS) -> list[float]:
    """Each run's decode steps per second, the best of `best_of` runs of `LATE_STEPS`, taking turns.

    A step is one `step_streams` call, as `StepBatch._step` makes it: the window's rows, and a riding
    window's rows after them with their logits skipped (keys only in their last layer). Each engine
    and condition steps in one cache, a riding run's rows in one of their own that shares its
    condition (`handoff.share_condition`, as `StepBatch._warm` does), seen in the stage's layout they
    ride in (`handoff.stage_view`); each cache has `cache_positions` slots (the daemon's window's: its heads
    lie that far apart) or as many as its steps reach. Their slots hold random codes with scales of a
    real cache's size (a step's time does not depend on their values)."""
    generator = torch.Generator().manual_seed(0)
    rates: list[list[float]] = [[] for _ in runs]
    slots: dict[tuple[int, int], int] = {}
    for run in runs:
        key = (id(run.engine), id(run.cond))
        slots[key] = max(slots.get(key, cache_positions), run.position + LATE_STEPS)
    with ExitStack() as stack:
        windows: dict[tuple[int, int], KVCache] = {}
        steps: list[Callable[[int], object]] = []
        for run in runs:
            decoder, rows = run.engine.decoder, run.cond.hidden_states.shape[0]
            pattern, _ = plan_window(run.engine.bundle, run.cond, None, 1)
            key = (id(run.engine), id(run.cond))
            window = windows.get(key)
            if window is None:
                window = windows[key] = stack.enter_context(decoder.open_cache(rows, slots[key]))
                decoder.prefill(window, run.cond, pattern.inputs)  # the condition's cross-attention
                _random_slots(window, generator)
            column = pattern.inputs[..., 0]
            if run.context_position is None:
                steps.append(functools.partial(_step, decoder, [window], [column], [run.position]))
                continue
            whole = stack.enter_context(
                decoder.open_cache(rows, max(cache_positions, run.context_position + LATE_STEPS)))
            share_condition(window, whole)
            _random_slots(whole, generator)
            riding = stage_view(whole, run.context_position + LATE_STEPS, RIDE_STAGE_POSITIONS)
            if riding is not whole:
                stack.callback(riding.free)
            steps.append(functools.partial(_step, decoder, [window, riding], [column, column],
                                           [run.position, run.context_position]))
        for _ in range(best_of):
            for step, got in zip(steps, rates, strict=True):
                started = time.perf_counter()
                for offset in range(LATE_STEPS):
                    step(offset)
                got.append(LATE_STEPS / (time.perf_counter() - started))
    return [max(got) for got in rates]


def _step(decoder: MusicgenDecoder, caches: list[KVCache], columns: list[torch.Tensor], positions: list[int],
          offset: int) -> object:
    """One step of `caches`' windows at `positions` plus `offset`, the logits of the first only."""
    return decoder.step_streams(caches, columns, [position + offset for position in positions], logit_windows=1)


def _random_slots(cache: KVCache, generator: torch.Generator) -> None:
    """Random codes in every self-attention slot of `cache`, with scales of a real cache's size."""
    for slots in (*cache.keys, *cache.values):
        low, high = (0, 256) if slots.dtype == torch.uint8 else (-127, 128)
        slots.random_(low, high, generator=generator)
    for scales in (*cache.key_scales, *cache.value_scales):
        scales.copy_(torch.rand(scales.shape, generator=generator) * 0.02)


@torch.inference_mode()
def _rate(engine: MusicgenEngine, cond: Conditioning, frames: int) -> float:
    """Decode steps per second of a sampled window of `frames`, the better of two (after a short
    window that pays lazy set-up): on a shared machine, a neighbour's burst only slows one run."""
    params = GenerationParams(duration_s=frames / engine.bundle.frame_rate, seed=0, guidance_scale=GUIDANCE_SCALE)
    for _ in engine.columns(cond, None, 4, params, seeded_rng(0, engine.bundle.device)):
        pass
    rates = []
    for _ in range(2):
        stamps = []
        for _ in engine.columns(cond, None, frames, params, seeded_rng(0, engine.bundle.device)):
            if engine.bundle.device.type == "cuda":
                torch.cuda.synchronize()
            stamps.append(time.perf_counter())
        # From the first column on: the prefill is not a decode step.
        rates.append((len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else math.nan)
    return max(rates)


def _rematch(engines: dict[str, MusicgenEngine], cond: Conditioning, frames: int,
             measurements: dict[str, ModeMeasurement]) -> None:
    """Time `engines`' decode rates again in `REMATCH_ROUNDS` rounds, taking turns, and make each
    mode's `steps_per_s` its median rate relative to its round's mean, times the best round's mean.

    Modes timed one after another meet the host at different moments: on the 2-core Zen 4 KVM the
    memory bandwidth a step gets moved between ~34 and ~64 GB/s within seconds, and calibrations
    measured int8's steps at 0.67-1.25 times int8a8's, one mode after the other, where one process
    alternating them finds the two within a few per cent. So auto's pick between them followed the
    moment (an int8 pick ran a 60 s job at rtf 1.08-1.13 where int8a8 ran 1.23-1.26). Modes timed
    side by side in one round share its moment; the median over rounds drops a round that a change of
    moment split."""
    if len(engines) < 2:
        return
    rounds: list[dict[str, float]] = []
    for turn in range(REMATCH_ROUNDS):
        order = list(engines.items()) if turn % 2 == 0 else list(reversed(engines.items()))
        rounds.append({mode: _rate(engine, cond, frames) for mode, engine in order})
    best_mean = max(statistics.fmean(r.values()) for r in rounds)
    for mode in engines:
        relative = statistics.median(r[mode] / statistics.fmean(r.values()) for r in rounds)
        measurements[mode] = dataclasses.replace(measurements[mode], steps_per_s=relative * best_mean)
        log.info("engine calibration: %s %.1f steps/s taking turns (rounds: %s)", mode,
                 measurements[mode].steps_per_s, ", ".join(f"{r[mode]:.1f}" for r in rounds))


def _job_costs(engines: dict[str, MusicgenEngine], single: Conditioning,
               steps_per_s: dict[str, float]) -> dict[str, tuple[float, int, str]]:
    """What a `LONG_JOB_S` job costs each of `engines` (all handing off: `handoff.hands_off`) beyond its
    steps at its early rate (`steps_per_s`, as `_rate` measured it), in seconds; the job's new frames;
    and how it was timed.

    The job's steps by kind (job_steps.py): those a window takes alone, timed at their mean position,
    and those the next window rides, timed as the daemon's riding step at their mean positions (the
    window late in its positions, the riding rows early in theirs). All steps of all engines are timed
    in one `_step_rates` call, taking turns, so one moment of the host does not decide between the
    engines. What a decode loop adds to its steps (sampling, the Python around them) is the same in
    every mode on riffd's step: it is the early rate's step over an early step timed alike (at
    `EARLY_POSITION`), averaged over the engines, so that the engines compare on their steps timed
    together, not on the early rates measured apart (int8 and int8a8 tie on AVX2 through the step,
    0.99x, where calibrations' early rates put them 1-7 % apart either way)."""
    if not engines:
        return {}
    first = next(iter(engines.values()))
    bundle = first.bundle
    windows = plan_windows(round(LONG_JOB_S * bundle.frame_rate), 0, bundle.window_frames, _stride(bundle))
    plan = job_steps(windows, delay_steps(bundle.num_codebooks, bundle.audio_channels), hands_off=True)
    early, alone, riding = (_timed_position(first, round(p))
                            for p in (EARLY_POSITION, plan.alone_position, plan.riding_position))
    context = _timed_position(first, round(plan.context_position))
    runs = [_Steps(engine, single, position, context_position) for engine in engines.values()
            for position, context_position in ((early, None), (alone, None), (riding, context))]
    rates = _step_rates(runs, max(cache_positions(w, bundle) for w in windows), JOB_RUNS)
    timed = {mode: [1.0 / rate for rate in rates[3 * i:3 * i + 3]] for i, mode in enumerate(engines)}
    loop_s = statistics.fmean(1.0 / steps_per_s[mode] - early_s for mode, (early_s, _, _) in timed.items())
    costs = {}
    for mode, (early_s, alone_s, riding_s) in timed.items():
        job_s = plan.alone_steps * alone_s + plan.riding_steps * riding_s + plan.steps * loop_s
        costs[mode] = (max(0.0, job_s - plan.steps / steps_per_s[mode]), plan.frames,
                       f"{plan.alone_steps} steps alone {1e3 * alone_s:.2f} ms at position {alone}, "
                       f"{plan.riding_steps} riding {1e3 * riding_s:.2f} ms at {riding} with rows at {context}, "
                       f"{1e3 * early_s:.2f} ms at {early}, the loop {1e3 * loop_s:+.2f} ms a step")
    return costs


def _stride(bundle: MusicgenBundle) -> int:
    """The frames a later window advances by at the default extend stride."""
    return stride_frames(GenerationParams(duration_s=1.0).extend_stride_s, bundle)


def _context_s(engine: MusicgenEngine, single: Conditioning, steps_per_s: float) -> tuple[float, int, str]:
    """What long-form costs `engine` beyond its early steps (at `steps_per_s`), in seconds, per how many new frames, and
    how it was timed: where windows hand off (`handoff.hands_off`: riffd's native step), `_job_costs`;
    elsewhere the prefill of a window's context (a 60 s job's second and third windows start from the
    last window - stride frames) per the new frames such a window makes."""
    if hands_off(engine.decoder, single):
        return _job_costs({"": engine}, single, {"": steps_per_s})[""]
    window = plan_windows(2 * engine.bundle.window_frames, 0, engine.bundle.window_frames, _stride(engine.bundle))[1]
    return _prefill_s(engine, single, window), window.new_frames, f"a {window.prompt_frames}-frame prefill"


@torch.inference_mode()
def _prefill_s(engine: MusicgenEngine, cond: Conditioning, window: Window) -> float:
    """Seconds of `window`'s prefill (its context run through the decoder before its first step), over
    random context codes (the arithmetic does not depend on them). One run: it takes seconds, so a
    lazy set-up is a small share of it."""
    bundle = engine.bundle
    codes = torch.randint(0, engine.decoder.vocab, (cond.batch_size, bundle.num_codebooks, window.prompt_frames),
                          generator=torch.Generator().manual_seed(0)).to(bundle.device)
    pattern, first_slot = plan_window(bundle, cond, codes, window.new_frames)
    with engine.decoder.open_cache(cond.hidden_states.shape[0], first_slot + pattern.steps - 1) as cache:
        started = time.perf_counter()
        engine.decoder.prefill(cache, cond, pattern.inputs)
        if bundle.device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - started
