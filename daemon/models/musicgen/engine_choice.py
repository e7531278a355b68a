"""`--engine auto`: the fastest engine mode that keeps to float32, picked from a calibration.

A calibration measures, on this machine and this model, each offered mode's decode rate and its
greedy agreement with float32 (`calibration.py` does the measuring). The rule here picks among
modes that agree with float32 on at least `MIN_AGREEMENT` of their greedy codes and are
measurably faster than float32; float32 itself when none is. Calibrations are cached as JSON,
keyed by the model's files and the machine (CPU, cores, threads, libraries, kernel builds), so a
daemon measures once per model and CPU.

torch-free: the rule and the cache can be tested, and read by the CLI, without loading a model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: The engine spelling that asks for this module's choice.
AUTO = "auto"
#: Greedy-codes agreement with float32 a mode needs to be chosen (the issue's bar: 90 %).
MIN_AGREEMENT = 0.9
#: How much faster than float32 a mode must measure to be chosen over it: closer than this is
#: within a shared machine's noise, and then float32's exact parity wins.
MIN_SPEEDUP = 1.05
#: Modes within this of the fastest eligible one are taken as tied, and of those the one closer to
#: float32 wins. The issue asks for the fastest mode above the agreement bar; this band is only what
#: a calibration cannot tell apart. Since the native modes are timed taking turns (version 5), with
#: their long jobs' steps (version 6), the calibration lands near what a job measures: on the 2-core
#: Intel Xeon (AVX-512 VNNI, AMX; 2026-12-07) it put int8a8 4.8 % ahead of int8 natively, 3.9 % and
#: 8.2 % with AVX2 and AVX-VNNI emulated, where `bench.job_steps_ab` measured 5.1, 2.4 and 7.2 %
#: (frames of a 60 s job, the two taking turns) and `bench.realtime` jobs taking turns natively 3.0,
#: 6.8 and 3.4 % (rtf 1.245, 1.312, 1.351 against 1.209, 1.228, 1.306). With MIN_SPEEDUP's 5 % as the
#: band, auto kept int8 there and the performer lost that much real time: its auto jobs ran rtf 1.230,
#: 1.243 and 1.178, under the issue's 1.25, where int8a8+kv4's ran 1.272, 1.290 and 1.263.
TIE_BAND = 1.03
#: How fast late in a window (`calibration.LATE_POSITION`) a mode's 4-bit cache (`+kv4`) must step,
#: against its int8 cache, for auto to add it. Its early steps are the int8 cache's very code (the
#: window's first `kv_cache.INT8_HEAD_POSITIONS` positions stay int8), so only the late rate can tell.
#: It reads and holds half the int8 cache's bytes (82 against 157 MB for a musicgen-small window) at
#: the int8 cache's agreement (docs/realtime-log.md, "4-bit keys and values"), so a tie keeps it: only late steps
#: measurably slower drop it. Idle on the Zen 4 it measured 1.07-1.30x natively and with AVX-VNNI
#: emulated, 1.00-1.17x with AVX2 emulated; AVX-VNNI in a busy minute (load ~3) 1.00x. The earlier
#: bar of 1.03x turned those ties into a window cache of twice the bytes for every later job, since a
#: calibration is cached.
MIN_KV4_LATE_RATIO = 0.97
#: Bumped when what a calibration measures changes, so older cache files are measured again.
#: 3: a long-form window's context (its prefill, or its rows riding the steps before it) counted per frame.
#: 4: packed int8/int4 weights in huge pages (daemon/native/huge_pages.py): the native modes' rates moved
#: against float32's without a kernel change, so the build's hash alone would keep the old choice.
#: 5: the native modes that keep the bar timed against each other taking turns (calibration._rematch).
#: 6: the native modes' long-form cost as a 60 s job's later and riding steps, as the daemon runs them
#: (calibration._job_costs), not a four-row window at one position: on AVX2 that picked int8a8 by chance.
#: 7: TIE_BAND (3 %) instead of MIN_SPEEDUP (5 %) between eligible modes: a cached calibration timed
#: the late steps (+kv4) of the mode the old band picked, and the contexts it pruned by the old band.
CALIBRATION_VERSION = 7


@dataclass(frozen=True)
class ModeMeasurement:
    """One engine mode on this machine: its decode rate and how closely it follows float32."""

    mode: str  # the --engine spelling: "int8", "float32+draft"
    steps_per_s: float  # decode loop rate (sampling included), whole loop over its wall time
    token_agreement: float  # greedy codes equal to float32's (1.0 for float32, and for +draft by construction)
    # Modes on riffd's native step (int8, int8a8, int4), else None: steps per second late in a window
    # (calibration.LATE_POSITION) with the int8 cache and with the 4-bit one (+kv4), and +kv4's greedy
    # agreement over the same frames as `token_agreement`.
    late_steps_per_s: float | None = None
    kv4_late_steps_per_s: float | None = None
    kv4_token_agreement: float | None = None
    # What long-form audio costs beyond the mode's steps at `steps_per_s` (early in a window), in seconds, per
    # `context_new_frames` new frames. On riffd's native step: a 60 s job's (calibration.LONG_JOB_S: 3000 frames)
    # later steps and the steps the next window's context rides (handoff.py), timed as the daemon runs them
    # (job_steps.py). Elsewhere: a later window's prefill of its 600 context frames per the 900 new frames it
    # makes (its steps' growth with the position is not timed there). None where not timed: float32
    # (its speed is then its steps' alone, an upper bound, so no mode is ever picked for being faster
    # than a float32 that is not), and modes whose steps alone are too slow to be picked (calibration.py).
    context_s: float | None = None
    context_new_frames: int | None = None

    @property
    def frame_s(self) -> float:
        """Seconds a frame of long-form audio costs this mode: an early step, plus its share of the extras."""
        step_s = 1.0 / self.steps_per_s if self.steps_per_s > 0 else math.inf
        if self.context_s is None or not self.context_new_frames:
            return step_s
        return step_s + self.context_s / self.context_new_frames

    @property
    def frames_per_s(self) -> float:
        """Frames a second with the long-form extras counted (`steps_per_s` where they were not timed)."""
        return 1.0 / self.frame_s

    def describe_rate(self) -> str:
        if self.context_s is None or not self.context_new_frames:
            return f"{self.steps_per_s:.1f} steps/s"
        return (f"{self.frames_per_s:.1f} frames/s: {self.steps_per_s:.1f} steps/s and {self.context_s:.2f} s "
                f"of long-form extras per {self.context_new_frames} frames")


@dataclass(frozen=True)
class Calibration:
    """Every offered mode measured on one model and one machine."""

    key: str  # calibration_key(...) of the model and the machine
    model_id: str
    machine: str  # a description for people: CPU, ISA class, threads
    measurements: tuple[ModeMeasurement, ...]
    seconds: float  # how long the measuring took
    version: int = CALIBRATION_VERSION

    def measured(self, mode: str) -> ModeMeasurement | None:
        return next((m for m in self.measurements if m.mode == mode), None)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> Calibration:
        data = json.loads(text)
        def optional(value: Any) -> float | None:
            return None if value is None else float(value)

        measurements = tuple(ModeMeasurement(str(m["mode"]), float(m["steps_per_s"]), float(m["token_agreement"]),
                                             optional(m.get("late_steps_per_s")),
                                             optional(m.get("kv4_late_steps_per_s")),
                                             optional(m.get("kv4_token_agreement")),
                                             optional(m.get("context_s")),
                                             None if m.get("context_new_frames") is None
                                             else int(m["context_new_frames"]))
                             for m in data["measurements"])
        return cls(key=str(data["key"]), model_id=str(data["model_id"]), machine=str(data["machine"]),
                   measurements=measurements, seconds=float(data["seconds"]), version=int(data["version"]))


@dataclass(frozen=True)
class Choice:
    """The mode `auto` picked, and why (one line for the log and the status)."""

    mode: str
    reason: str
    calibration: Calibration
    cached: bool = False  # the calibration came from the cache, not measured now


def choose(calibration: Calibration, *, min_agreement: float = MIN_AGREEMENT,
           min_speedup: float = MIN_SPEEDUP, tie_band: float = TIE_BAND) -> Choice:
    """The fastest mode with at least `min_agreement` greedy agreement and `min_speedup` times
    float32's rate; float32 when no mode is both. Never a mode slower than float32. Modes within
    `tie_band` of the fastest are as fast as it for all a calibration can tell, and then the one
    closer to float32 wins.

    A mode's rate is its frames a second with the long-form extras counted where they were timed
    (`ModeMeasurement.frames_per_s`): a mode whose early steps are measurably faster can lose a long job
    to one whose later and riding steps cost less, and one whose steps alone tie can win it (a 60 s
    job's native steps, the modes taking turns on the Zen 4: int8a8+kv4 0.905 times int8+kv4's a frame,
    0.99 with AVX2 emulated)."""
    reference = calibration.measured("float32")
    if reference is None or reference.steps_per_s <= 0:
        raise ValueError("a calibration must measure float32, the reference every mode is compared with")
    eligible, refused = [], []
    for m in calibration.measurements:
        if m.mode == "float32":
            continue
        speedup = m.frames_per_s / reference.frames_per_s
        if m.token_agreement < min_agreement:
            refused.append(f"{m.mode} agrees {m.token_agreement:.0%} < {min_agreement:.0%}")
        elif speedup < min_speedup:
            refused.append(f"{m.mode} only {speedup:.2f}x float32")
        else:
            eligible.append(m)
    best = _best(eligible, tie_band) or reference
    if best is reference:
        head = (f"float32 ({reference.describe_rate()}): no faster mode keeps {min_agreement:.0%} agreement")
    else:
        head = (f"{best.mode}: {best.frames_per_s / reference.frames_per_s:.2f}x float32 "
                f"({best.describe_rate()} vs {reference.describe_rate()}), "
                f"{best.token_agreement:.1%} greedy agreement with float32")
    others = [f"{m.mode} {m.frames_per_s / reference.frames_per_s:.2f}x" for m in eligible if m is not best]
    details = "; ".join(filter(None, [", ".join(others) and "also eligible: " + ", ".join(others),
                                      ", ".join(refused) and "left out: " + ", ".join(refused)]))
    kv4, why = _kv4_verdict(best, min_agreement)
    return Choice(best.mode + ("+kv4" if kv4 else ""),
                  head + (f" ({details})" if details else "") + (f"; {why}" if why else ""), calibration)


def _best(eligible: list[ModeMeasurement], tie_band: float) -> ModeMeasurement | None:
    """Of `eligible` modes, the one closest to float32 among those within `tie_band` of the fastest."""
    if not eligible:
        return None
    fastest = max(m.frames_per_s for m in eligible)
    as_fast = [m for m in eligible if m.frames_per_s * tie_band >= fastest]
    return max(as_fast, key=lambda m: (m.token_agreement, m.frames_per_s))


def context_could_matter(step_s: float, best_frame_s: float | None, *, tie_band: float = TIE_BAND) -> bool:
    """Whether a mode whose steps alone take `step_s` a frame could still be picked once its windows'
    context is counted, against the cheapest frame (`best_frame_s`, context included) measured so
    far: the context only adds, so a mode whose steps alone are not within `tie_band` of that frame
    can be neither the fastest nor as fast as it, and its context need not be timed."""
    return best_frame_s is None or step_s <= best_frame_s * tie_band


def _kv4_verdict(best: ModeMeasurement, min_agreement: float) -> tuple[bool, str]:
    """Whether `best` runs with the 4-bit cache, and why ('' when it was not measured).

    +kv4 steps exactly as the int8 cache through the window's int8 head, then reads half the bytes a
    position: it is added unless its late steps measure slower than `MIN_KV4_LATE_RATIO` times the int8
    cache's, or its agreement misses the bar. Its agreement over the calibration's first frames is the
    int8 cache's by construction (those positions are int8); late in a window it was measured offline
    (bench/kv4_agreement.py).
    """
    late, late4, agreement4 = best.late_steps_per_s, best.kv4_late_steps_per_s, best.kv4_token_agreement
    if late is None or late4 is None or agreement4 is None or late <= 0:
        return False, ""
    speedup = late4 / late
    if agreement4 < min_agreement:
        return False, f"no +kv4: it agrees {agreement4:.0%} < {min_agreement:.0%}"
    if speedup < MIN_KV4_LATE_RATIO:
        return False, f"no +kv4: late steps {speedup:.2f}x the int8 cache's ({late4:.1f} vs {late:.1f} steps/s)"
    return True, (f"+kv4: late steps {speedup:.2f}x the int8 cache's ({late4:.1f} vs {late:.1f} steps/s), "
                  f"{agreement4:.1%} greedy agreement")


def calibration_key(model: Mapping[str, Any], machine: Mapping[str, Any]) -> str:
    """A file-name-safe key of everything a calibration's result depends on.

    `model`: the model id and its files (names, sizes, modification times); `machine`: the CPU,
    the cores and threads, the device, the libraries and riffd's kernel build. Any change in
    either means a new calibration.
    """
    blob = json.dumps({"version": CALIBRATION_VERSION, "model": model, "machine": machine}, sort_keys=True,
                      default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def model_fingerprint(model_id: str, folder: Path) -> dict[str, Any]:
    """The model's identity for the key: its id, and every file of its folder by name, size and mtime.

    Sizes and times rather than contents: hashing gigabytes of weights would cost more than the
    calibration it saves; a rewritten checkpoint gets a new modification time.
    """
    files = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        stat = path.stat()
        files.append((str(path.relative_to(folder)), stat.st_size, stat.st_mtime_ns))
    return {"model_id": model_id, "folder": str(folder.resolve()), "files": files}


class CalibrationCache:
    """Calibrations as `<key>.json` files in one folder; unreadable or stale files count as absent."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.json"

    def get(self, key: str) -> Calibration | None:
        path = self.path(key)
        try:
            calibration = Calibration.from_json(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring the unreadable engine calibration %s (%s); measuring again", path, exc)
            return None
        if calibration.version != CALIBRATION_VERSION or calibration.key != key:
            return None
        return calibration

    def put(self, calibration: Calibration) -> Path | None:
        """Store a calibration (atomically); None, with a warning, where the folder is not writable."""
        path = self.path(calibration.key)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            handle, partial = tempfile.mkstemp(suffix=".json", dir=self.folder)
            with os.fdopen(handle, "w") as out:
                out.write(calibration.to_json())
            os.replace(partial, path)
        except OSError as exc:
            log.warning("cannot cache the engine calibration in %s (%s): the next load measures again",
                        self.folder, exc)
            return None
        return path
