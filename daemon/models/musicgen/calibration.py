"""Measuring engine modes on this machine for `--engine auto`: decode rate and agreement with float32.

Short on purpose (it runs at a daemon's first load of a model on a CPU, then comes from the
cache): each mode decodes `speed_frames` sampled columns of one prompt, the way a request runs
(top-k 250, guidance 3), timed over the whole loop so speculative bursts count fairly; then it
is fed float32's greedy columns of a two-prompt batch and scored on how many of its greedy codes
are float32's (`agreement.forced_scores`, the same comparison the bench and the tests make).
float32 is timed first and last and keeps its better run, so a noisy moment cannot make
another mode look faster than it is.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import math
import time
from collections.abc import Sequence

import torch

from daemon.models.musicgen.agreement import forced_scores
from daemon.models.musicgen.conditioning import Conditioning, build_conditioning
from daemon.models.musicgen.engine import MusicgenEngine
from daemon.models.musicgen.engine_choice import Calibration, ModeMeasurement
from daemon.models.musicgen.loader import MusicgenBundle
from daemon.seeds import seeded_rng
from daemon.models.musicgen.options import EngineOptions
from protocol.params import GenerationParams

log = logging.getLogger(__name__)

#: Prompts of the agreement batch: two, so one prompt's quirks do not decide.
PROMPTS = ("80s pop track with bassy drums and synth", "calm piano over soft strings")
GUIDANCE_SCALE = 3.0


def calibrate(bundle: MusicgenBundle, modes: Sequence[str], *, key: str, machine: str, speed_frames: int = 32,
              agreement_frames: int = 24) -> Calibration:
    """Measure each of `modes` (float32 always, first and last) on `bundle`'s device."""
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
    measurements = []
    for mode in modes:
        if mode == "float32":
            continue
        options = EngineOptions.parse(mode)
        engine = MusicgenEngine(bundle, dataclasses.replace(options, warmup=False))
        rate = _rate(engine, single, speed_frames)
        if options.draft:
            # Speculative decoding keeps float32's distribution, and greedy its very codes
            # (tests/musicgen/test_speculative.py): its agreement is float32's own.
            agreement = 1.0
        else:
            agreement = float((forced_scores(engine, batch, columns, GUIDANCE_SCALE).argmax(-1) == want)
                              .float().mean())
        log.info("engine calibration, %s: %s %.1f steps/s, %.1f %% greedy agreement with float32",
                 bundle.model_id, mode, rate, 100 * agreement)
        measurements.append(ModeMeasurement(mode, rate, agreement))
        del engine
        gc.collect()
    float32_rates.append(_rate(reference, single, speed_frames))
    log.info("engine calibration, %s: float32 %.1f steps/s (best of %s)", bundle.model_id, max(float32_rates),
             ", ".join(f"{r:.1f}" for r in float32_rates))
    return Calibration(key=key, model_id=bundle.model_id, machine=machine,
                       measurements=(ModeMeasurement("float32", max(float32_rates), 1.0), *measurements),
                       seconds=time.perf_counter() - started)


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
