"""`--engine auto`: the rule over an injected calibration, the cache and its key, and a real auto load."""

from __future__ import annotations

import dataclasses
import os
import random
from pathlib import Path

import pytest

from daemon.cpu import isa_class, parse_cpuinfo
from daemon.models.musicgen import engine_modes
from daemon.models.musicgen.engine_choice import (
    MIN_AGREEMENT, TIE_BAND, Calibration, CalibrationCache, ModeMeasurement, calibration_key, choose,
    context_could_matter, model_fingerprint,
)


def _calibration(*measurements: tuple[str, float, float], key: str = "k") -> Calibration:
    return Calibration(key=key, model_id="m", machine="test CPU",
                       measurements=tuple(ModeMeasurement(*m) for m in measurements), seconds=1.0)


def test_auto_picks_the_fastest_mode_that_agrees_with_float32():
    calibration = _calibration(("float32", 10.0, 1.0), ("bfloat16", 18.0, 0.96), ("int8", 40.0, 0.97),
                               ("int8dyn", 55.0, 0.88), ("int4", 70.0, 0.71), ("float32+draft", 19.0, 1.0))
    choice = choose(calibration)
    # int8dyn and int4 are faster, but change the music: below the agreement bar.
    assert choice.mode == "int8"
    assert "4.00x float32" in choice.reason and "int8dyn agrees 88%" in choice.reason


def test_auto_never_picks_a_mode_slower_than_float32_or_below_the_threshold():
    rng = random.Random(12)
    modes = ("bfloat16", "int8", "int8a8", "int8dyn", "int4", "float32+draft")
    for _ in range(500):
        float32 = rng.uniform(1, 50)
        measured = [("float32", float32, 1.0)] + [(mode, rng.uniform(0.2, 5) * float32, rng.uniform(0.6, 1.0))
                                                  for mode in rng.sample(modes, rng.randint(0, len(modes)))]
        choice = choose(_calibration(*measured))
        picked = choice.calibration.measured(choice.mode)
        assert picked is not None
        assert picked.steps_per_s >= float32 and picked.token_agreement >= MIN_AGREEMENT
        # ...within the noise of the fastest eligible mode, and none as fast was closer to float32.
        eligible = [m for m in choice.calibration.measurements
                    if m.mode != "float32" and m.token_agreement >= MIN_AGREEMENT and m.steps_per_s >= 1.05 * float32]
        if eligible:
            fastest = max(m.steps_per_s for m in eligible)
            assert picked.steps_per_s * TIE_BAND >= fastest
            assert all(m.token_agreement <= picked.token_agreement for m in eligible
                       if m.steps_per_s * TIE_BAND >= fastest)


def test_of_two_modes_as_fast_within_the_noise_the_one_closer_to_float32_wins():
    # int8a8 1 % faster than int8 (a calibration cannot tell) but further from float32: int8.
    choice = choose(_calibration(("float32", 5.0, 1.0), ("int8", 69.9, 0.968), ("int8a8", 70.6, 0.921)))
    assert choice.mode == "int8"
    # 10 % faster is a measured difference: the faster one, still above the bar.
    assert choose(_calibration(("float32", 5.0, 1.0), ("int8", 64.0, 0.968), ("int8a8", 70.6, 0.921))).mode == "int8a8"
    # So is 4.8 % (the Intel Xeon's calibration, where a 60 s job measured 3-7 % taking turns): the
    # issue asks for the fastest mode above the bar, not the closest one within MIN_SPEEDUP's 5 %.
    xeon = choose(_calibration(("float32", 5.0, 1.0), ("int8", 67.4, 0.972), ("int8a8", 70.6, 0.949)))
    assert xeon.mode == "int8a8" and "also eligible: int8 13.48x" in xeon.reason
    # Just inside the band (2.9 %) is still a tie.
    assert choose(_calibration(("float32", 5.0, 1.0), ("int8", 68.6, 0.972), ("int8a8", 70.6, 0.949))).mode == "int8"


def test_a_mode_whose_long_form_windows_cost_less_wins_a_tie_of_steps():
    # Steps 2.6 % apart (a tie: int8, closer to float32, wins by steps alone), but what a window's
    # 600-frame context costs (its rows riding the steps before it, or its prefill) is 35 % less for
    # int8a8: per frame of a long job (a context per 900 new frames) 15.2 + 4.1 = 19.3 ms against
    # 14.8 + 2.7 = 17.4 ms, 1.10x: int8a8.
    def measured(int8_context_s: float | None, int8a8_context_s: float | None) -> Calibration:
        return Calibration(key="k", model_id="m", machine="test CPU", seconds=1.0, measurements=(
            ModeMeasurement("float32", 4.4, 1.0),
            ModeMeasurement("int8", 65.9, 0.972, context_s=int8_context_s, context_new_frames=900),
            ModeMeasurement("int8a8", 67.7, 0.907, context_s=int8a8_context_s, context_new_frames=900)))

    assert choose(measured(None, None)).mode == "int8"
    choice = choose(measured(3.7, 2.4))
    assert choice.mode == "int8a8"
    assert ("int8a8: 13.03x float32 (57.3 frames/s: 67.7 steps/s and 2.40 s of long-form extras per 900 frames "
            "vs 4.4 steps/s)") in choice.reason and "also eligible: int8 11.78x" in choice.reason
    # Contexts alike: the tie stands, and the one closer to float32 wins again.
    assert choose(measured(3.0, 2.9)).mode == "int8"
    # A context so dear that the mode falls below float32's speed leaves it out altogether.
    costly = Calibration(key="k", model_id="m", machine="test CPU", seconds=1.0, measurements=(
        ModeMeasurement("float32", 10.0, 1.0), ModeMeasurement("int8", 20.0, 0.97, context_s=90.0, context_new_frames=900)))
    assert choose(costly).mode == "float32" and "int8 only 0.67x" in choose(costly).reason
    # ...and the context survives the cache's JSON.
    again = Calibration.from_json(measured(3.7, 2.4).to_json())
    assert again == measured(3.7, 2.4) and choose(again).mode == "int8a8"


def test_a_context_is_timed_only_where_it_could_change_the_choice():
    # The cheapest frame so far costs 17.4 ms with its context; steps alone of 17.9 ms are within the
    # tie band of it (could tie once counted), 18.0 ms are not (a context only adds: never as fast).
    assert context_could_matter(0.0180, None) and context_could_matter(0.0179, 0.0174)
    assert not context_could_matter(0.0180, 0.0174)
    rng = random.Random(3)
    for _ in range(300):
        float32 = ("float32", rng.uniform(2, 10), 1.0)
        modes = [(f"m{i}", rng.uniform(10, 80), rng.uniform(0.85, 1.0), rng.uniform(0.5, 6.0)) for i in range(4)]
        full = [ModeMeasurement(name, rate, agreement, context_s=context, context_new_frames=900)
                for name, rate, agreement, context in modes]
        # As calibrate does: fastest steps first, skipping those that cannot matter; the choice is the same.
        pruned, best_frame_s = {m.mode: dataclasses.replace(m, context_s=None) for m in full}, None
        for m in sorted(full, key=lambda m: m.steps_per_s, reverse=True):
            if m.token_agreement >= MIN_AGREEMENT and m.steps_per_s >= 1.05 * float32[1] and \
                    context_could_matter(1 / m.steps_per_s, best_frame_s):
                pruned[m.mode] = m
                best_frame_s = min(m.frame_s, best_frame_s or 1.0)
        everything = Calibration(key="k", model_id="m", machine="t", seconds=1.0,
                                 measurements=(ModeMeasurement(*float32), *full))
        assert choose(dataclasses.replace(everything, measurements=(everything.measurements[0], *pruned.values()))
                      ).mode == choose(everything).mode


def test_auto_adds_the_4bit_cache_unless_its_late_steps_measure_slower():
    def calibration(late4: float | None, agreement4: float | None = 0.95) -> Calibration:
        return Calibration(key="k", model_id="m", machine="test CPU", seconds=1.0, measurements=(
            ModeMeasurement("float32", 5.0, 1.0), ModeMeasurement("bfloat16", 9.0, 0.97),
            ModeMeasurement("int8", 70.0, 0.97, 50.0, late4, agreement4)))

    choice = choose(calibration(56.0))  # 12 % faster late, the bar kept: int8+kv4
    assert choice.mode == "int8+kv4" and "+kv4: late steps 1.12x the int8 cache's (56.0 vs 50.0" in choice.reason
    # a tie (a busy minute hides the 4-bit cache's fewer bytes) keeps it: half the bytes, the same agreement
    assert choose(calibration(50.0)).mode == "int8+kv4" and choose(calibration(49.0)).mode == "int8+kv4"
    slower = choose(calibration(47.5))  # 0.95x: measurably slower, the int8 cache
    assert slower.mode == "int8" and "no +kv4: late steps 0.95x the int8 cache's" in slower.reason
    low = choose(calibration(60.0, 0.85))
    assert low.mode == "int8" and "no +kv4: it agrees 85%" in low.reason
    assert choose(calibration(None, None)).mode == "int8"  # not measured (an older calibration): nothing added
    # the late figures survive the cache's JSON
    again = Calibration.from_json(calibration(56.0).to_json())
    assert again == calibration(56.0) and choose(again).mode == "int8+kv4"


def test_float32_when_no_mode_is_both_faster_and_faithful():
    # Slower (PyTorch's int8 on a CPU without riffd's kernels), within noise, or unfaithful.
    choice = choose(_calibration(("float32", 10.0, 1.0), ("int8", 5.0, 0.98), ("bfloat16", 10.2, 0.97),
                                 ("int4", 30.0, 0.5)))
    assert choice.mode == "float32"
    assert "int8 only 0.50x" in choice.reason and "int4 agrees 50%" in choice.reason
    with pytest.raises(ValueError):
        choose(_calibration(("int8", 5.0, 0.98)))  # no reference: nothing to compare with


def test_the_cache_round_trips_and_ignores_damaged_or_stale_files(tmp_path: Path):
    cache = CalibrationCache(tmp_path / "choices")
    calibration = _calibration(("float32", 10.0, 1.0), ("int8", 40.0, 0.97), key="abc")
    assert cache.get("abc") is None
    path = cache.put(calibration)
    assert path == tmp_path / "choices" / "abc.json" and cache.get("abc") == calibration
    assert not [p for p in path.parent.iterdir() if p != path]  # written beside and renamed: no leftovers
    path.write_text("{not json")
    assert cache.get("abc") is None
    path.write_text(dataclasses.replace(calibration, version=0).to_json())
    assert cache.get("abc") is None  # measured by an older riffd: measure again
    unwritable = CalibrationCache(path / "below-a-file")
    assert unwritable.put(calibration) is None  # a warning, not a failed load


def test_the_key_follows_the_model_files_and_the_machine(tmp_path: Path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"x" * 10)
    machine = {"cpu": "AMD EPYC", "flags": ["avx2", "avx512_vnni"], "cores": 2, "threads": 2, "native": "libriffd-1.so"}
    key = calibration_key(model_fingerprint("m", folder), machine)
    assert key == calibration_key(model_fingerprint("m", folder), dict(machine))
    assert key != calibration_key(model_fingerprint("other", folder), machine)
    for change in ({"flags": ["avx2"]}, {"cpu": "Intel Xeon"}, {"threads": 1}, {"native": "libriffd-2.so"},
                   {"library_overrides": {"ATEN_CPU_CAPABILITY": "avx2"}}):
        assert key != calibration_key(model_fingerprint("m", folder), {**machine, **change}), change
    stat = (folder / "model.safetensors").stat()
    os.utime(folder / "model.safetensors", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert key != calibration_key(model_fingerprint("m", folder), machine)  # new weights, new measurement
    # The real machine fingerprint sees this process's threads and the AVX2 emulation's variables.
    import torch

    threads = torch.get_num_threads()
    real = engine_modes.machine_fingerprint(torch.device("cpu"))
    try:
        torch.set_num_threads(threads + 1)
        assert engine_modes.machine_fingerprint(torch.device("cpu"))["threads"] != real["threads"]
    finally:
        torch.set_num_threads(threads)


def test_cpu_classes_from_cpuinfo():
    def cls(flags: str, machine: str = "x86_64") -> str:
        return parse_cpuinfo(f"model name\t: X\nflags\t\t: {flags}\n", machine, 2).isa

    zen4 = "fpu sse avx avx2 fma avx512f avx512bw avx512_vnni avx512_bf16"
    assert cls(zen4) == "avx512_vnni"
    assert cls("avx avx2 fma avx_vnni") == "avx_vnni"  # Intel 12th gen and later
    assert cls("avx avx2 fma") == "avx2"  # Zen 2/3, Intel before Alder Lake
    assert cls("sse4_2") == "generic"
    assert isa_class(frozenset({"fp", "asimd", "asimddp"}), "aarch64") == "neon_dotprod"
    assert isa_class(frozenset({"fp", "asimd"}), "aarch64") == "neon"
    assert parse_cpuinfo(f"model name\t: AMD EPYC\nflags\t\t: {zen4}\n", "x86_64", 2).describe() == \
        "AMD EPYC (avx512_vnni, 2 cores)"


def test_auto_loads_the_calibrated_choice_once_and_a_slower_draft_runs_as_float32(
        riffd_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture):
    """Through the registry, as `riffd serve` loads: an injected calibration, measured once, then cached."""
    import logging

    from daemon.models.musicgen import calibration
    from daemon.models.registry import load_backend

    cache = tmp_path / "cache"
    cache.mkdir()
    load_backend("debug/musicgen", device="cpu", cache_dir=riffd_cache, engine=None)  # the preset, built once
    (cache / "presets").symlink_to(riffd_cache / "presets")  # the preset, not its calibrations
    measured: list[list[str]] = []

    def injected(bundle, modes, *, key, machine, **_):
        measured.append(list(modes))
        return _calibration(("float32", 10.0, 1.0), ("int8", 50.0, 0.8), ("bfloat16", 20.0, 0.95),
                            ("int4", 5.0, 0.99), ("float32+draft", 8.0, 1.0), key=key)

    monkeypatch.setattr(calibration, "calibrate", injected)
    caplog.set_level(logging.INFO, logger="daemon.models.musicgen.engine_modes")
    assert load_backend("debug/musicgen", device="cpu", cache_dir=cache, engine="auto").engine_name == "bfloat16"
    assert measured and {"float32", "bfloat16", "int4"} <= set(measured[0])
    assert "engine auto for debug/musicgen" in caplog.text and "bfloat16: 2.00x float32" in caplog.text
    assert load_backend("debug/musicgen", device="cpu", cache_dir=cache, engine="auto").engine_name == "bfloat16"
    assert len(measured) == 1  # the second load read the cache
    # +draft measured slower than float32 here serves float32 (whose output it gives anyway) and says so;
    # another explicit mode measured slower runs as asked, with a warning.
    caplog.clear()
    draft = load_backend("debug/musicgen", device="cpu", cache_dir=cache, engine="float32+draft+nowarmup")
    assert draft.engine_name == "float32"
    assert "float32+draft runs as float32: measured slower than float32" in caplog.text
    assert load_backend("debug/musicgen", device="cpu", cache_dir=cache, engine="int4").engine_name == "int4"
    assert "int4 is measured slower than float32" in caplog.text
    assert load_backend("debug/musicgen", device="cpu", cache_dir=cache, engine="int8").engine_name == "int8"


def test_without_riffd_kernels_int8_and_int4_run_as_int8dyn_and_draft_as_float32(
        load_preset, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    bundle = load_preset("debug/musicgen").bundle
    monkeypatch.setattr(engine_modes, "native_int8_problem", lambda: "this CPU has no VNNI (test)")
    setup = engine_modes.resolve("int8", bundle, tmp_path)
    assert setup.options.name == "int8dyn" and "no VNNI (test)" in setup.reason
    setup = engine_modes.resolve("int4", bundle, tmp_path)
    assert setup.options.name == "int8dyn" and setup.reason.startswith("int4 runs as int8dyn")
    setup = engine_modes.resolve("int8a8", bundle, tmp_path)
    assert setup.options.name == "int8dyn" and setup.reason.startswith("int8a8 runs as int8dyn")
    assert engine_modes.resolve("float32+draft", bundle, tmp_path).options.name == "float32"
    assert engine_modes.resolve("bfloat16", bundle, tmp_path).reason == ""
    # ...and auto does not even measure them there.
    offered = engine_modes.offered_modes(bundle.device)
    assert not {"int8", "int8a8", "int4", "float32+draft"} & set(offered) and "float32" in offered


def test_a_real_calibration_measures_rates_and_agreement(load_preset):
    from daemon.models.musicgen.calibration import calibrate

    bundle = load_preset("debug/musicgen").bundle
    result = calibrate(bundle, ["float32", "int8", "int8a8", "int4", "float32+draft"], key="k", machine="here",
                       speed_frames=8, agreement_frames=8)
    assert [m.mode for m in result.measurements] == ["float32", "int8", "int8a8", "int4", "float32+draft"]
    assert all(m.steps_per_s > 0 for m in result.measurements)
    int8, int8a8, int4 = result.measured("int8"), result.measured("int8a8"), result.measured("int4")
    assert int8.token_agreement >= 0.85 and int8a8.token_agreement >= 0.85
    assert int4.token_agreement < 1.0  # int4 loses some codes on random weights
    assert result.measured("float32+draft").token_agreement == 1.0
    # The fastest mode that keeps the bar has its long-form extras timed (on riffd's step a 60 s job's
    # later and riding steps, per its 3000 frames; else a window's prefill per the 900 new frames of a
    # window at the default 18 s stride); float32's never are (its steps alone bound its speed).
    float32 = result.measured("float32")
    assert float32.context_s is None and float32.frames_per_s == pytest.approx(float32.steps_per_s)
    timed = [m for m in result.measurements if m.context_s is not None]
    eligible = [m for m in result.measurements[1:] if m.token_agreement >= MIN_AGREEMENT
                and m.steps_per_s >= 1.05 * float32.steps_per_s]
    assert (max(eligible, key=lambda m: m.steps_per_s) in timed) if eligible else not timed
    stride = min(int(18.0 * bundle.frame_rate), bundle.window_frames - 1)
    for m in timed:
        frames = 60 * bundle.frame_rate if m.mode in ("int8", "int8a8", "int4") else stride
        assert m.context_s >= 0 and m.context_new_frames == frames
        assert m.frame_s == pytest.approx(1 / m.steps_per_s + m.context_s / frames)
    # Only the mode picked is timed late in a window, with the int8 cache and +kv4's 4-bit one (where it
    # runs on riffd's step); +kv4's agreement over these 8 frames is the int8 cache's exactly (its int8
    # head covers them).
    picked = choose(result).mode.removesuffix("+kv4")
    for native in (int8, int8a8, int4):
        if native.mode != picked:
            assert native.late_steps_per_s is None and native.kv4_token_agreement is None
            continue
        assert native.late_steps_per_s > 0 and native.kv4_late_steps_per_s > 0
        assert native.kv4_token_agreement == native.token_agreement
    assert float32.late_steps_per_s is None


def test_native_modes_are_compared_taking_turns_not_one_after_the_other(monkeypatch):
    # A host whose memory bandwidth drops after the first two timings (as the Zen 4 KVM's moved
    # between ~34 and ~64 GB/s within seconds): int8, timed first, met the fast moment and measured
    # 1.5x int8a8, though int8a8 steps 1.1x faster. Timed again taking turns, each round shares one
    # moment, and the median relative speed gives int8a8 back its lead, at the best round's scale.
    from daemon.models.musicgen import calibration

    true_steps_per_s = {"int8": 100.0, "int8a8": 110.0}
    host = iter([1.6, 1.6, 1.0, 1.0, 1.0, 1.0, 0.7, 0.7])
    monkeypatch.setattr(calibration, "_rate", lambda engine, cond, frames: true_steps_per_s[engine] * next(host))
    measurements = {"int8": ModeMeasurement("int8", 150.0, 0.97), "int8a8": ModeMeasurement("int8a8", 100.0, 0.93)}
    engines = {"int8": "int8", "int8a8": "int8a8"}  # `_rate` (replaced) only passes the engine on
    calibration._rematch(engines, None, 8, measurements)  # type: ignore[arg-type]
    int8, int8a8 = measurements["int8"].steps_per_s, measurements["int8a8"].steps_per_s
    assert int8a8 / int8 == pytest.approx(1.1)
    assert (int8 + int8a8) / 2 == pytest.approx(1.6 * 105.0)  # the best round's mean
    assert measurements["int8"].token_agreement == 0.97  # only the rate is measured again
    # One mode has nothing to be compared with: left as it was, no rounds spent.
    alone = {"int8": ModeMeasurement("int8", 150.0, 0.97)}
    calibration._rematch({"int8": "int8"}, None, 8, alone)  # type: ignore[arg-type]
    assert alone["int8"].steps_per_s == 150.0


def _daemon_schedule(windows, delay: int) -> list[tuple[int, int | None]]:
    """Each shared step of a job as the daemon schedules it (batch.StepBatch with handoff.Warming, one context
    column a step): the window's position, and the slot of the next window's context column riding it, if any."""
    steps: list[tuple[int, int | None]] = []
    for window, following in zip(windows, [*windows[1:], None]):
        context = following.prompt_frames if following is not None else 0
        rides = {0: 0} if context else {}  # its BOS column rides the window's first step
        shift = window.prompt_frames + window.new_frames - context
        for step in range(window.new_frames + delay):
            made = window.prompt_frames + 1 + step - shift  # the context column this step's column becomes
            if context and 1 <= made < context:
                rides[step + 1] = made  # queued after the step, fed with the next one
        steps += [(window.prompt_frames + step, rides.get(step)) for step in range(window.new_frames + delay)]
    return steps


def test_a_long_jobs_steps_are_counted_by_kind_where_the_daemon_runs_them():
    from daemon.models.musicgen.job_steps import job_steps
    from daemon.models.musicgen.longform import plan_windows

    windows = plan_windows(3000, 0, 1500, 900)  # 60 s of musicgen at the default 18 s stride
    plan = job_steps(windows, 3, hands_off=True)
    schedule = _daemon_schedule(windows, 3)
    riding = [(p, c) for p, c in schedule if c is not None]
    alone = [p for p, c in schedule if c is None]
    assert (plan.frames, plan.steps, plan.riding_steps, plan.alone_steps) == (3000, len(schedule), len(riding), len(alone))
    assert plan.riding_steps == 1200 and plan.context_position == pytest.approx(299.5)
    assert plan.riding_position == pytest.approx(sum(p for p, _ in riding) / len(riding), abs=3)
    assert plan.alone_position == pytest.approx(sum(alone) / len(alone), abs=3)
    # Without hand-off (float32, the Python step) nothing rides: every step alone.
    quiet = job_steps(windows, 3, hands_off=False)
    assert quiet.riding_steps == 0 and quiet.alone_steps == len(schedule)
    assert quiet.alone_position == pytest.approx(sum(p for p, _ in schedule) / len(schedule))


def test_auto_weighs_a_long_jobs_riding_steps_as_the_daemon_runs_them(load_preset, monkeypatch):
    """An injected step timing (a fake clock moved by each step call) where int8a8's early steps are 6 % faster
    than int8's, but its steps with the next window's rows riding cost 3.5 ms more (AVX2: its products of four
    rows are bound by the multipliers). A step of ONE window of four rows at one position (how calibration once
    timed riding) is cheap for int8a8 here: timing riding that way again would pick int8a8 and fail."""
    import types

    from daemon.models.musicgen import calibration, handoff
    from daemon.models.musicgen.conditioning import build_conditioning
    from daemon.models.musicgen.engine import MusicgenEngine
    from daemon.models.musicgen.longform import plan_windows
    from daemon.models.musicgen.options import EngineOptions

    bundle = load_preset("debug/musicgen").bundle
    single = build_conditioning(bundle, ["a"], guidance_scale=3.0)
    clock = types.SimpleNamespace(now=0.0)
    monkeypatch.setattr(calibration, "time", types.SimpleNamespace(perf_counter=lambda: clock.now))
    slope_ms, context_slope_ms = 0.004, 0.002  # a step's time a cache position (the window's; the riding rows')

    def step_ms(cost: dict[str, float], rows: list[int], positions: list[int]) -> float:
        ms = cost["early"] + slope_ms * positions[0]
        if len(rows) == 2:  # the daemon's riding step: the window, the next one's rows beside it
            ms += cost["riding"] + context_slope_ms * positions[1]
        elif rows[0] == 4:  # one window of two guided prompts: not a riding step
            ms += cost["four_rows"]
        return ms

    def estimate(costs: dict[str, dict[str, float]], early_moment: dict[str, float] | None = None) -> Calibration:
        # `_rate`'s early steps per second, sampled (here: the early step itself), in the host's moment then.
        rates = {mode: (early_moment or {}).get(mode, 1.0) * 1e3 / step_ms(cost, [2], [calibration.EARLY_POSITION])
                 for mode, cost in costs.items()}
        engines = {}
        for mode, cost in costs.items():
            engine = MusicgenEngine(bundle, EngineOptions.parse(mode + "+nowarmup"))
            real = engine.decoder.step_streams

            def timed(caches, columns, positions, logit_windows=None, cost=cost, real=real):
                if len(caches) == 2:
                    riding_layouts.add((caches[1].max_positions, positions[1]))
                clock.now += 1e-3 * step_ms(cost, [c.keys[0].shape[0] for c in caches], list(positions))
                return real(caches, columns, positions, logit_windows)

            monkeypatch.setattr(engine.decoder, "step_streams", timed)
            engines[mode] = engine
        jobs = calibration._job_costs(engines, single, rates)
        return Calibration(key="k", model_id="m", machine="test CPU", seconds=1.0, measurements=(
            ModeMeasurement("float32", 4.4, 1.0),
            *(ModeMeasurement(mode, rates[mode], 0.97 if mode == "int8" else 0.907, context_s=jobs[mode][0],
                              context_new_frames=jobs[mode][1]) for mode in costs)))

    # What each mode's job costs a frame, step by step as the daemon schedules a 60 s job.
    windows = plan_windows(round(calibration.LONG_JOB_S * bundle.frame_rate), 0, bundle.window_frames,
                           calibration._stride(bundle))
    schedule = _daemon_schedule(windows, 3)

    def job_frame_s(cost: dict[str, float]) -> float:
        return 1e-3 * sum(step_ms(cost, [2] if c is None else [2, 2], [p] if c is None else [p, c])
                          for p, c in schedule) / sum(w.new_frames for w in windows)

    avx2 = {"int8": dict(early=14.0, riding=3.0, four_rows=3.0), "int8a8": dict(early=13.2, riding=6.5, four_rows=1.0)}
    riding_layouts: set[tuple[int, int]] = set()
    measured = estimate(avx2)
    # The riding rows step in the layout the daemon's stages give them there (handoff.Warming.make_room): the
    # first stage that holds the timed positions, not the window-sized cache.
    stage = handoff.RIDE_STAGE_POSITIONS
    assert {size for size, _ in riding_layouts} == {-(-max(p + 1 for _, p in riding_layouts) // stage) * stage}
    for mode, cost in avx2.items():
        assert measured.measured(mode).frame_s == pytest.approx(job_frame_s(cost), rel=0.01)
    assert choose(measured).mode == "int8"
    # Its early steps alone would have picked int8a8 (6 % faster, more than the noise bar).
    steps_only = dataclasses.replace(measured, measurements=tuple(
        dataclasses.replace(m, context_s=None) for m in measured.measurements))
    assert choose(steps_only).mode == "int8a8"
    # Steps that tie, but int8a8's early rate met a fast moment of the host (8 % faster, as calibrations'
    # early rates put int8 and int8a8 1-7 % apart either way on AVX2): the modes compare on their steps timed
    # together, so the tie stands (int8, closer to float32), and each estimate stays the job's.
    tie = {"int8": dict(early=14.0, riding=3.0, four_rows=3.0), "int8a8": dict(early=14.0, riding=3.0, four_rows=3.0)}
    lucky = estimate(tie, {"int8a8": 1.08})
    assert choose(lucky).mode == "int8"
    assert lucky.measured("int8a8").frame_s / lucky.measured("int8").frame_s == pytest.approx(1.0, abs=0.01)
    # Where int8a8's riding rows are no dearer (AVX-512 VNNI), its faster steps win the job.
    native = {"int8": dict(early=14.0, riding=3.0, four_rows=3.0), "int8a8": dict(early=13.2, riding=2.5, four_rows=2.5)}
    assert choose(estimate(native)).mode == "int8a8"


@pytest.mark.parametrize(("device", "picked", "runs"), [
    ("cuda", "bfloat16", "bfloat16+compile"), ("cuda", "float32+draft", "float32+draft"), ("cpu", "int8a8", "int8a8")])
def test_auto_on_a_gpu_compiles_its_pick(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, device: str, picked: str,
                                         runs: str):
    """On a GPU the calibrated pick runs compiled, replayed from a CUDA graph (5x eager's steps on an H100);
    +draft cannot be compiled and stays as picked; a CPU pick is never compiled (slower there)."""
    import types

    import torch

    from daemon.models.musicgen.engine_choice import Choice

    calibration = _calibration(("float32", 10.0, 1.0), (picked, 20.0, 0.95))
    monkeypatch.setattr(engine_modes, "choose_auto", lambda bundle, cache_dir: Choice(picked, "why", calibration))
    bundle = types.SimpleNamespace(device=torch.device(device), model_id="m")
    setup = engine_modes.resolve("auto", bundle, tmp_path)  # type: ignore[arg-type]
    assert setup.options.name == runs
    assert ("CUDA graphs" in setup.reason) == (runs != picked)
