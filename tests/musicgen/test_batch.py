"""Continuous batching: seeded jobs give the same audio alone or batched, whoever joins or leaves."""

from __future__ import annotations

import dataclasses
import threading
import time

import numpy as np
import pytest
import torch

from daemon.audio.types import Audio
from daemon.models.musicgen import kv_cache
from daemon.models.musicgen.backend import MusicGen
from daemon.models.musicgen.options import EngineOptions
from daemon.models.musicgen.streaming_codec import StreamSettings
from protocol.errors import Cancelled
from protocol.params import GenerationParams

SETTINGS = StreamSettings(first_chunk_frames=10, chunk_frames=25)


def _tone(seconds: float, rate: int) -> Audio:
    t = np.arange(int(seconds * rate)) / rate
    return Audio((0.4 * np.sin(2 * np.pi * 220.0 * t))[None].astype(np.float32), rate)


@dataclasses.dataclass
class Take:
    """One job: what it asks for, and when it joins or stops (counted in its own decode steps)."""

    name: str
    text: str
    params: GenerationParams
    audio_prompt: Audio | None = None
    start_after: tuple[str, int] | None = None  # join once that take has made this many steps
    stop_at_step: int | None = None  # cancelled at this step of its own
    overlap: bool = True  # the take it starts after waits (a while) for it to join, so they step together


def _model(load_preset, preset: str, mode: str, *, python_step: bool = False) -> MusicGen:
    bundle = load_preset(preset).bundle
    # Short windows, so the longer takes are long-form: their later windows join the batch again.
    bundle = dataclasses.replace(bundle, window_frames=40)
    model = MusicGen(bundle, engine=EngineOptions.parse(mode + "+nowarmup"), stream_settings=SETTINGS, max_batch=4)
    if python_step:
        model.engine.decoder.native = None  # the Python int8/int4 step, where the weights are shared across streams
    return model


def _alone(model: MusicGen, take: Take) -> np.ndarray:
    return np.concatenate([c.audio for c in model.stream(take.text, take.params, audio_prompt=take.audio_prompt)],
                          axis=1)


def _together(model: MusicGen, takes: list[Take]) -> tuple[dict[str, np.ndarray | Exception], int]:
    """Run the takes as concurrent batched jobs; their audio (or error), and the most streams seen stepping at once."""
    steps = {take.name: 0 for take in takes}
    reached = {(take.start_after or ("", 0)): threading.Event() for take in takes}
    # (leader, step) -> follower that leader waits for: a tiny model's take could otherwise end
    # before a loaded machine has scheduled its follower's prompt and prefill.
    followers = {take.start_after: take.name for take in takes if take.start_after is not None and take.overlap}
    lock = threading.Lock()
    results: dict[str, np.ndarray | Exception] = {}
    most = 0

    def progress_of(name: str):
        def progress(done: int, total: int) -> None:
            nonlocal most
            with lock:
                steps[name] = done
                most = max(most, len(model.batch.snapshot().streams))
                waits = []
                for (other, at), event in reached.items():
                    if other == name and done >= at and not event.is_set():
                        event.set()
                        if (other, at) in followers:
                            waits.append(followers[(other, at)])
            for follower in waits:  # this take's thread steps no further until its follower joined
                deadline = time.monotonic() + 10
                while follower not in model.batch.snapshot().streams and follower not in results \
                        and time.monotonic() < deadline:
                    time.sleep(0.002)
        return progress

    def run(take: Take) -> None:
        if take.start_after is not None:
            assert reached[take.start_after].wait(60)
        stop = (lambda: steps[take.name] >= take.stop_at_step) if take.stop_at_step is not None else None
        try:
            chunks = model.stream(take.text, take.params, audio_prompt=take.audio_prompt,
                                  progress=progress_of(take.name), should_stop=stop, batched=True, label=take.name)
            results[take.name] = np.concatenate([c.audio for c in chunks], axis=1)
        except Cancelled as exc:
            results[take.name] = exc
        finally:
            for (other, _), event in reached.items():
                if other == take.name:
                    event.set()  # never leave a follower waiting

    threads = [threading.Thread(target=run, args=(take,)) for take in takes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(thread.is_alive() for thread in threads)
    return results, most


def _takes(rate: int) -> list[Take]:
    sampled = GenerationParams(duration_s=1.6, seed=3, top_k=50, temperature=0.9)  # long-form: 3 windows
    return [
        Take("first", "an upbeat jazz tune", sampled),
        Take("greedy", "drums", GenerationParams(duration_s=0.9, greedy=True, guidance_scale=5.0),
             start_after=("first", 7)),
        Take("continued", "strings", GenerationParams(duration_s=0.7, seed=11, top_p=0.9), audio_prompt=_tone(0.3, rate),
             start_after=("greedy", 13)),
        Take("cancelled", "noise", GenerationParams(duration_s=1.2, seed=5, top_k=20), start_after=("first", 3),
             stop_at_step=17),
        Take("unguided", "bass", GenerationParams(duration_s=0.5, seed=8, guidance_scale=1.0),
             start_after=("cancelled", 17), overlap=False),  # takes the cancelled job's place
    ]


@pytest.mark.parametrize("mode, python_step", [("float32", False), ("int8", False), ("int8", True), ("int4", False),
                                               ("int8a8", False), ("int8a8+kv4", False)],
                         ids=["float32", "int8-native", "int8-python", "int4-native", "int8a8-native",
                              "int8a8-kv4-native"])
def test_batched_jobs_give_their_audio_alone(load_preset, monkeypatch, mode, python_step):
    monkeypatch.setattr(kv_cache, "INT8_HEAD_POSITIONS", 5)  # +kv4: int8 slots, then 4-bit ones, in every window
    model = _model(load_preset, "debug/musicgen", mode, python_step=python_step)
    takes = _takes(model.sample_rate)
    alone = {take.name: _alone(model, take) for take in takes if take.stop_at_step is None}
    together, most = _together(model, takes)
    assert most >= 3, "the takes never stepped together: nothing was batched"
    for name, audio in alone.items():
        got = together[name]
        assert isinstance(got, np.ndarray), got
        np.testing.assert_array_equal(got, audio, err_msg=name)
    assert isinstance(together["cancelled"], Cancelled)
    # Everyone left: no stream, no admission and no cache held.
    snapshot = model.batch.snapshot()
    assert snapshot.streams == () and snapshot.cache_bytes == 0 and model.engine.live_caches == 0


def test_stereo_and_melody_jobs_batch_too(load_preset):
    for preset in ("debug/musicgen-stereo", "debug/musicgen-melody"):
        model = _model(load_preset, preset, "float32")
        takes = [Take("a", "strings", GenerationParams(duration_s=0.8, seed=1, top_k=50)),
                 Take("b", "drums", GenerationParams(duration_s=0.6, seed=2, top_k=50), start_after=("a", 5))]
        alone = {take.name: _alone(model, take) for take in takes}
        together, most = _together(model, takes)
        assert most == 2, preset
        for name in alone:
            np.testing.assert_array_equal(together[name], alone[name], err_msg=f"{preset} {name}")


def test_admission_waits_for_room_highest_priority_first(load_preset):
    model = _model(load_preset, "debug/musicgen", "int8")
    batch = model.batch
    batch.max_streams = 1
    order: list[str] = []
    gate = threading.Event()
    params = GenerationParams(duration_s=0.3, seed=1, greedy=True)

    def run(label: str, priority: int) -> None:
        def progress(done: int, total: int) -> None:
            if done == 1:
                order.append(label)
            if label == "holder":
                gate.wait(30)
        for _ in model.stream("x", params, progress=progress, batched=True, label=label, priority=priority):
            pass

    holder = threading.Thread(target=run, args=("holder", 0))
    holder.start()
    while batch.snapshot().streams != ("holder",):
        threading.Event().wait(0.01)
    waiting = [threading.Thread(target=run, args=(label, priority))
               for label, priority in (("render-1", 0), ("render-2", 0), ("live", 10))]
    for arrived, thread in enumerate(waiting, start=1):
        thread.start()
        while len(batch.snapshot().waiting) < arrived:  # one at a time, so their arrival order is known
            threading.Event().wait(0.01)
    assert batch.snapshot().waiting == ("live", "render-1", "render-2")
    gate.set()
    for thread in [holder, *waiting]:
        thread.join(60)
    assert order == ["holder", "live", "render-1", "render-2"]


def test_a_window_over_the_memory_budget_is_refused(load_preset):
    from protocol.errors import OutOfMemory

    model = _model(load_preset, "debug/musicgen", "float32")
    model.batch.max_cache_bytes = 1024
    with pytest.raises(OutOfMemory, match="batch-memory-mb"):
        list(model.stream("x", GenerationParams(duration_s=0.3, seed=1), batched=True))
    assert torch.is_grad_enabled()  # no inference mode left behind on this thread


@pytest.mark.parametrize("mode, python_step", [("float32", False), ("bfloat16", False), ("int8", False),
                                               ("int8", True), ("int4", False), ("int4", True), ("int8a8", False),
                                               ("int8a8", True), ("int8a8+kv4", False), ("int8a8+kv4", True)],
                         ids=["float32", "bfloat16", "int8-native", "int8-python", "int4-native", "int4-python",
                              "int8a8-native", "int8a8-python", "int8a8-kv4-native", "int8a8-kv4-python"])
def test_a_shared_step_gives_each_stream_its_logits_alone(load_preset, monkeypatch, mode, python_step):
    """Bit for bit, at different positions, guided and not: the property the audio equality rests on
    (a BLAS sgemm over all rows would differ in the last bits, which sampling mostly hides)."""
    monkeypatch.setattr(kv_cache, "INT8_HEAD_POSITIONS", 5)  # +kv4: streams on either side of the int8 head
    from daemon.models.musicgen.conditioning import build_conditioning
    from daemon.models.musicgen.delay import delays, initial_columns

    model = _model(load_preset, "debug/musicgen", mode, python_step=python_step)
    bundle, decoder = model.bundle, model.engine.decoder
    conds = [build_conditioning(bundle, [text], guidance_scale=scale)
             for text, scale in (("an upbeat jazz tune", 3.0), ("drums", 1.0), ("a walking bass line", 3.0))]
    lengths = (1, 4, 9)  # known columns before the shared steps: each stream at its own position
    rng = torch.Generator().manual_seed(0)

    def known(length: int) -> torch.Tensor:
        head = initial_columns(None, 1, bundle.num_codebooks, delays(bundle.num_codebooks, 1), bundle.pad_token_id,
                               bundle.device)
        more = torch.randint(0, decoder.vocab, (1, bundle.num_codebooks, length - 1), generator=rng)
        return torch.cat([head, more], dim=-1)

    inputs = [known(length) for length in lengths]
    feeds = [torch.randint(0, decoder.vocab, (3, 1, bundle.num_codebooks), generator=rng) for _ in conds]
    with (decoder.open_cache(2, 16) as a0, decoder.open_cache(1, 16) as a1, decoder.open_cache(2, 16) as a2,
          decoder.open_cache(2, 16) as b0, decoder.open_cache(1, 16) as b1, decoder.open_cache(2, 16) as b2):
        alone_caches, shared_caches = [a0, a1, a2], [b0, b1, b2]
        for caches in (alone_caches, shared_caches):
            for cache, cond, columns in zip(caches, conds, inputs):
                decoder.prefill(cache, cond, columns)
        for step in range(3):
            positions = [length + step for length in lengths]
            columns = [feed[step] for feed in feeds]
            alone = [decoder.step(c, col, p) for c, col, p in zip(alone_caches, columns, positions)]
            shared = decoder.step_streams(shared_caches, columns, positions)
            for one, together in zip(alone, shared):
                assert torch.equal(one, together), (mode, step)


def test_a_condition_swapped_between_steps_is_heard_from_the_next_step(load_preset):
    """What a jam's live prompt change rests on: the native step follows the new condition too."""
    from daemon.models.musicgen.conditioning import build_conditioning
    from daemon.models.musicgen.delay import delays, initial_columns

    model = _model(load_preset, "debug/musicgen", "int8")
    bundle, decoder = model.bundle, model.engine.decoder
    assert decoder.native is not None
    first = build_conditioning(bundle, ["an upbeat jazz tune"], guidance_scale=3.0)
    second = build_conditioning(bundle, ["slow dark ambient drones with a long text prompt"], guidance_scale=3.0)
    head = initial_columns(None, 1, bundle.num_codebooks, delays(bundle.num_codebooks, 1), bundle.pad_token_id,
                           bundle.device)
    column = torch.zeros((1, bundle.num_codebooks), dtype=torch.long)

    def after_swap(swap_to, native: bool) -> torch.Tensor:
        saved, decoder.native = decoder.native, (decoder.native if native else None)
        try:
            with decoder.open_cache(2, 8) as cache:
                decoder.prefill(cache, first, head)
                decoder.step(cache, column, 1)
                if swap_to is not None:
                    decoder.set_condition(cache, swap_to)
                return decoder.step(cache, column, 2)
        finally:
            decoder.native = saved

    kept, swapped, python_swapped = after_swap(None, True), after_swap(second, True), after_swap(second, False)
    assert not torch.allclose(kept, swapped, atol=1e-3)
    assert (swapped - python_swapped).abs().max() <= 1e-3 * python_swapped.abs().max()
    assert torch.equal(after_swap(first, True), kept)  # swapping to the same condition changes nothing


def test_a_job_alone_in_the_batch_steps_on_its_own_thread_and_two_jobs_take_turns(load_preset):
    """No thread of its own for the batch: a lone job runs its shared steps on the thread reading its
    columns (no hand-over per step, as unbatched decoding); jobs together run them on their own threads."""
    from daemon.models.musicgen.conditioning import build_conditioning
    from daemon.seeds import seeded_rng

    model = _model(load_preset, "debug/musicgen", "float32")
    assert model.batch is not None
    cond = build_conditioning(model.bundle, ["a drone"], guidance_scale=3.0)
    params = GenerationParams(duration_s=1.0, seed=1)

    def run(seed: int, seen: set[int]) -> int:
        columns = model.batch.columns(model.bundle, cond, None, 30, params, seeded_rng(seed),
                                      timed=lambda step, seconds, riding: seen.add(threading.get_ident()), label=str(seed))
        return sum(1 for _ in columns)

    alone: set[int] = set()
    assert run(1, alone) == 33 and alone == {threading.get_ident()}
    steppers: list[set[int]] = [set(), set()]
    readers = [threading.Thread(target=run, args=(seed, seen)) for seed, seen in zip((2, 3), steppers)]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join()
    assert steppers[0] | steppers[1] <= {reader.ident for reader in readers} and steppers[0] and steppers[1]


def test_a_text_prompt_joining_the_batch_makes_its_first_column_in_the_next_shared_step(load_preset):
    """Its prefill is the native step at slot 0: it rides the batch's next step (one native call for
    every stream's rows) instead of a call of its own beside it, and its columns are those alone."""
    from daemon.models.musicgen.conditioning import build_conditioning
    from daemon.models.musicgen.loop import decoder_columns
    from daemon.seeds import seeded_rng

    model = _model(load_preset, "debug/musicgen", "int8")
    decoder = model.engine.decoder
    assert model.batch is not None and decoder.native is not None
    rows: list[int] = []
    native_step, step_draw = decoder.native.model.step, decoder.native.model.step_draw

    def counted(x, batch, threads=None, **kwargs):
        rows.append(len(batch))
        return native_step(x, batch, threads, **kwargs)

    def counted_draw(batch, *args, **kwargs):  # the shared step with its inputs and draws in one call
        rows.append(len(batch))
        return step_draw(batch, *args, **kwargs)

    conds = [build_conditioning(model.bundle, [text], guidance_scale=3.0) for text in ("a drone", "a jig")]
    params = GenerationParams(duration_s=1.0, top_k=50)
    alone = [torch.stack(list(decoder_columns(decoder, model.bundle, cond, None, 12, params, seeded_rng(seed))))
             for cond, seed in zip(conds, (1, 2))]
    decoder.native.model.step, decoder.native.model.step_draw = counted, counted_draw
    try:
        # Both generators on this thread: the first steps alone, then the second joins it.
        first = model.batch.columns(model.bundle, conds[0], None, 12, params, seeded_rng(1), label="first")
        made = [[next(first), next(first)], []]
        second = model.batch.columns(model.bundle, conds[1], None, 12, params, seeded_rng(2), label="second")
        made[1].append(next(second))
        assert rows == [2, 2, 4]  # first's prefill and step alone; then second's prefill with first's step
        for stream, columns in ((first, made[0]), (second, made[1])):
            columns.extend(stream)
    finally:
        decoder.native.model.step, decoder.native.model.step_draw = native_step, step_draw
    assert all(torch.equal(torch.stack(columns), expected) for columns, expected in zip(made, alone, strict=True))


def test_a_job_waiting_for_its_first_audio_goes_before_the_codec_work_of_jobs_at_its_priority_or_below(load_preset):
    """While a joining job waits for its first audio, the codec work of jobs at its priority or below
    waits (bounded), their columns queueing with the very bits alone; a lower-priority joiner holds
    nobody up, nor does one that gave up before its first audio."""
    from daemon.models.musicgen.conditioning import build_conditioning
    from daemon.models.musicgen.loop import decoder_columns
    from daemon.seeds import seeded_rng

    model = _model(load_preset, "debug/musicgen", "float32")
    batch = model.batch
    assert batch is not None
    batch.codec_yield_s = 2.0
    cond = build_conditioning(model.bundle, ["a drone"], guidance_scale=3.0)
    params = GenerationParams(duration_s=1.0, seed=1, top_k=50)

    def columns(seed: int, listener, label: str):
        return batch.columns(model.bundle, cond, None, 20, params, seeded_rng(seed), label=label, listener=listener)

    def turn_s(listener) -> float:
        started = time.monotonic()
        batch.codec_turn(listener)
        return time.monotonic() - started

    running = batch.listener(0)
    first = columns(1, running, "running")
    made = [next(first)]
    batch.first_audio(running)
    assert turn_s(running) < 0.4  # nobody waits for audio

    live = batch.listener(1)
    joining = columns(2, live, "joining")
    next(joining)  # admitted and stepping: its first audio is now what everyone waits for
    assert turn_s(live) < 0.4  # never for its own
    turned = threading.Event()
    waiter = threading.Thread(target=lambda: (batch.codec_turn(running), turned.set()))
    waiter.start()
    for _ in range(3):
        next(joining)  # this thread steps for both meanwhile
    assert not turned.is_set()
    batch.first_audio(live)
    assert turned.wait(5)
    waiter.join()

    render = batch.listener(-10)
    late = columns(3, render, "render")
    next(late)
    assert turn_s(running) < 0.4  # a render's first audio holds live work up for nothing
    held = batch.listener(-10)
    held.first_pending = False
    batch.codec_yield_s = 0.8
    assert 0.75 <= turn_s(held) < 4  # another render waits for it, but not for ever
    late.close()  # gave up before its first audio
    assert turn_s(held) < 0.4

    made += list(first)
    joining.close()
    alone = list(decoder_columns(model.engine.decoder, model.bundle, cond, None, 20, params, seeded_rng(1)))
    assert torch.equal(torch.stack(made), torch.stack(alone))


def test_a_shared_step_runs_in_inference_mode_and_leaves_it_after(load_preset, monkeypatch):
    """The shared step holds torch's inference mode (batch.py enters its guard directly) around the
    decoder's step and the sampling, and leaves it when the step ends."""
    from daemon.models.musicgen import batch as batch_module
    from daemon.models.musicgen.conditioning import build_conditioning
    from daemon.seeds import seeded_rng

    model = _model(load_preset, "debug/musicgen", "float32")
    assert model.batch is not None
    cond = build_conditioning(model.bundle, ["a drone"], guidance_scale=3.0)
    seen: list[tuple[str, bool]] = []
    step_streams, next_columns = model.batch.decoder.step_streams, batch_module.next_columns

    def stepping(*args, **kwargs):
        seen.append(("step", torch.is_inference_mode_enabled()))
        return step_streams(*args, **kwargs)

    def sampling(*args, **kwargs):
        seen.append(("sample", torch.is_inference_mode_enabled()))
        return next_columns(*args, **kwargs)

    monkeypatch.setattr(model.batch.decoder, "step_streams", stepping)
    monkeypatch.setattr(batch_module, "next_columns", sampling)
    columns = model.batch.columns(model.bundle, cond, None, 5, GenerationParams(duration_s=1.0, seed=1),
                                  seeded_rng(1), label="mode")
    for _ in columns:
        assert not torch.is_inference_mode_enabled()  # left again before the column comes out
    assert seen and all(on for _, on in seen) and {part for part, _ in seen} == {"step", "sample"}
