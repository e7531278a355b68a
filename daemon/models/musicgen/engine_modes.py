"""From the `--engine` spelling to the engine a model loads with: `auto`'s choice, and no mode slower than float32.

- `auto`: the calibration of this model on this machine (cached, else measured now) and
  `engine_choice.choose`'s rule; the choice and why are logged.
- An explicit mode is honoured, except where it is known to be slower than float32 here: int8,
  int8a8 and int4 without riffd's kernels run as int8dyn (fbgemm's dynamic int8, the fastest int8 PyTorch has);
  `+draft` without them is float32 (its output is float32's anyway, and an int8 draft on PyTorch's
  kernels is slower than the float32 it should speed up), and so is a `+draft` a cached
  calibration measured slower than float32. Each mapping is one warning that says why; another
  mode a calibration measured slower runs as asked (it changes the output), with a warning.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from daemon import config as daemon_config
from daemon.cpu import this_cpu
from daemon.models.musicgen.engine_choice import (
    AUTO, Calibration, CalibrationCache, Choice, calibration_key, choose, model_fingerprint,
)
from daemon.models.musicgen.loader import MusicgenBundle
from daemon.models.musicgen.options import NATIVE_FORMATS, EngineOptions
from daemon.native import NativeUnavailable

log = logging.getLogger(__name__)

#: Under the daemon's cache folder (~/.cache/riffd by default).
CALIBRATION_FOLDER = "engine-choice"


@dataclass(frozen=True)
class EngineSetup:
    """The options a model's engine is built with, and the line that says how they were reached."""

    options: EngineOptions
    reason: str  # "" when the asked-for mode runs as asked


def native_int8_problem() -> str | None:
    """None where riffd's int8 kernels run on this CPU; otherwise why they do not."""
    from daemon.native import kernels

    try:
        kernels()
    except NativeUnavailable as exc:
        return str(exc)
    return None


def dynamic_int8_available() -> bool:
    """Whether PyTorch has a dynamic int8 linear kernel here (fbgemm on x86, qnnpack on ARM)."""
    return bool({"fbgemm", "x86", "qnnpack"} & set(torch.backends.quantized.supported_engines))


def offered_modes(device: torch.device) -> list[str]:
    """The modes `auto` measures on `device`: those that can be faster than float32 here."""
    if device.type == "cuda":
        return ["float32", "bfloat16", "float16", "float32+draft"]
    if device.type != "cpu":
        return ["float32", "float16"]
    native = native_int8_problem() is None
    modes = ["float32", "bfloat16"]
    if native:
        # int8a8: int8's weights with 8-bit activations, the cheaper product at several rows
        modes += ["int8", "int8a8"]
    if dynamic_int8_available():
        modes.append("int8dyn")
    if native:
        # int4 on PyTorch's kernel (bfloat16 activations, int8 heads on PyTorch's int8) is not worth
        # measuring: where riffd's kernels cannot run, int4 runs as int8dyn (`runnable`).
        modes.append("int4")
        # The int8 draft is riffd's kernel or nothing: on PyTorch's int8 a drafted column costs
        # more than the float32 step it saves (0.42x float32 measured on an AVX2-only EPYC).
        modes.append("float32+draft")
    return modes


def machine_fingerprint(device: torch.device) -> dict[str, object]:
    """What a calibration's speeds depend on besides the model: CPU, cores, threads, libraries, kernels."""
    cpu = this_cpu()
    facts: dict[str, object] = {
        "cpu": cpu.model, "machine": cpu.machine, "flags": sorted(cpu.flags), "cores": cpu.cores,
        "threads": torch.get_num_threads(), "torch": torch.__version__, "device": str(device),
        "library_overrides": daemon_config.library_isa_overrides(),
    }
    if device.type == "cuda":
        facts["gpu"] = torch.cuda.get_device_name(device)
    if device.type == "cpu":
        from daemon.native import library

        try:  # the library's file name holds the hash of its sources, flags, compiler and CPU
            facts["native"] = Path(library()._name).name
        except NativeUnavailable as exc:
            facts["native"] = f"unavailable: {exc}"
    return facts


def machine_description(device: torch.device) -> str:
    """For people: the CPU, its threads, the branch of riffd's kernels and any capped library ISA
    (an emulated class: bench/isa.py), which the CPU's own name would not say."""
    if device.type == "cpu":
        from daemon.native import isa

        capped = daemon_config.library_isa_overrides().get("ATEN_CPU_CAPABILITY")
        return (f"{this_cpu().describe()}, {torch.get_num_threads()} threads, riffd kernels {isa()}"
                + (f", PyTorch capped to {capped}" if capped else ""))
    return torch.cuda.get_device_name(device) if device.type == "cuda" else device.type


def calibration_for(bundle: MusicgenBundle, cache_dir: Path) -> tuple[Calibration, bool, Path | None]:
    """This model's calibration on this machine: (it, whether it came from the cache, its file)."""
    from daemon.models.musicgen.calibration import calibrate

    cache = CalibrationCache(cache_dir / CALIBRATION_FOLDER)
    key = calibration_key(model_fingerprint(bundle.model_id, bundle.folder), machine_fingerprint(bundle.device))
    cached = cache.get(key)
    if cached is not None:
        return cached, True, cache.path(key)
    modes = offered_modes(bundle.device)
    log.info("engine auto: calibrating %s on %s (%s), once for this model and machine",
             bundle.model_id, machine_description(bundle.device), ", ".join(modes))
    calibration = calibrate(bundle, modes, key=key, machine=machine_description(bundle.device))
    return calibration, False, cache.put(calibration)


def cached_calibration(bundle: MusicgenBundle, cache_dir: Path) -> Calibration | None:
    """The calibration of this model on this machine if one is cached; never measures."""
    key = calibration_key(model_fingerprint(bundle.model_id, bundle.folder), machine_fingerprint(bundle.device))
    return CalibrationCache(cache_dir / CALIBRATION_FOLDER).get(key)


def choose_auto(bundle: MusicgenBundle, cache_dir: Path) -> Choice:
    calibration, cached, path = calibration_for(bundle, cache_dir)
    choice = choose(calibration)
    where = (f"calibration from {path}, measured in {calibration.seconds:.0f} s" if cached
             else f"calibrated in {calibration.seconds:.0f} s" + (f", cached in {path}" if path else ""))
    log.info("engine auto for %s on %s: %s [%s]; --engine float32 keeps exact parity with transformers",
             bundle.model_id, calibration.machine, choice.reason, where)
    return Choice(choice.mode, choice.reason, calibration, cached)


def runnable(options: EngineOptions, device: torch.device) -> tuple[EngineOptions, str]:
    """`options`, or what runs instead where they need riffd's kernels and those cannot run here,
    with the reason ("" when nothing changed)."""
    if device.type != "cpu" or not (options.weights in NATIVE_FORMATS or options.draft):
        return options, ""
    problem = native_int8_problem()
    if problem is None:
        return options, ""
    if options.draft:
        return (EngineOptions(weights="float32", warmup=options.warmup),
                f"{options.name} runs as float32: riffd's int8 kernels cannot draft here ({problem}), and a draft "
                "on PyTorch's kernels is slower than float32 (whose output +draft gives anyway)")
    if dynamic_int8_available():
        return (EngineOptions(weights="int8dyn", compile=options.compile, warmup=options.warmup),
                f"{options.weights} runs as int8dyn (fbgemm's dynamic int8, PyTorch's fastest int8 here): riffd's "
                f"kernels cannot run ({problem})")
    return options, ""


def resolve(spec: str, bundle: MusicgenBundle, cache_dir: Path) -> EngineSetup:
    """The options `spec` ('auto', 'int8', 'float32+draft+nowarmup', ...) gives `bundle` on its device."""
    if spec.strip() == AUTO:
        choice = choose_auto(bundle, cache_dir)
        options = EngineOptions.parse(choice.mode)
        if bundle.device.type == "cuda" and not options.draft and not options.compile:
            # On a GPU the step's ~600 kernel launches, not its arithmetic, set its pace: compiled and
            # replayed from a CUDA graph (graphed_step.py) a bfloat16 step ran 1.8 ms against 9.6 eager on
            # an H100 (bench/gpu). The calibration times the eager modes (compiling each would add a minute
            # or more to it); the pick is compiled.
            options = replace(options, compile=True)
            log.info("engine auto for %s: %s, compiled and replayed from a CUDA graph", bundle.model_id,
                     options.name)
        return EngineSetup(options, f"auto: {choice.reason}" + (" (+compile: CUDA graphs)" if options.compile else ""))
    options, reason = runnable(EngineOptions.parse(spec).validate(bundle.device), bundle.device)
    calibration = cached_calibration(bundle, cache_dir) if options.name != "float32" else None
    measured, reference = (calibration.measured(options.name), calibration.measured("float32")) if calibration \
        else (None, None)
    if measured is not None and reference is not None and measured.steps_per_s < reference.steps_per_s:
        slower = (f"measured slower than float32 on this machine ({measured.steps_per_s:.1f} vs "
                  f"{reference.steps_per_s:.1f} steps/s, calibration {calibration.key})")
        if options.draft:
            # +draft exists only to be faster than float32, whose output it gives: float32 it is.
            reason = f"{options.name} runs as float32: {slower}"
            options = EngineOptions(weights="float32", warmup=options.warmup)
        else:
            # Another format changes the output: it runs as asked, and the log says what is faster.
            reason = f"{options.name} is {slower}; --engine auto picks the fastest mode that keeps to float32"
    if reason:
        log.warning("engine for %s: %s", bundle.model_id, reason)
    return EngineSetup(options, reason)
