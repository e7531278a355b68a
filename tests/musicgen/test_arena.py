"""The slot arena (arena.py): every stream's rows in one fixed-shape step, each stream's codes its own."""

from __future__ import annotations

import dataclasses
from contextlib import ExitStack

import pytest
import torch

from daemon.models.musicgen.arena import BINDING
from daemon.models.musicgen.backend import MusicGen
from daemon.models.musicgen.conditioning import build_conditioning
from daemon.models.musicgen.loop import decoder_columns
from daemon.models.musicgen.options import EngineOptions
from daemon.seeds import seeded_rng
from protocol.errors import Cancelled
from protocol.params import GenerationParams

from graph_stand_in import ReplayGraph


@dataclasses.dataclass
class Stream:
    """One window in the test: its prompt, settings, when it joins (shared steps taken by then) and
    the column it leaves after (None: its whole window)."""

    text: str
    frames: int
    params: GenerationParams
    seed: int
    joins_at: int = 0
    leaves_after: int | None = None


# Different prompts, lengths and guidance (1.0: one row, else a pair), greedy and sampled; the late ones
# join past slot 256, so the steps they share read a longer bucket of slots than they do alone.
STREAMS = [
    Stream("an upbeat jazz tune", 300, GenerationParams(duration_s=1, top_k=50, guidance_scale=3.0), 1),
    Stream("drums", 40, GenerationParams(duration_s=1, greedy=True, guidance_scale=5.0), 2, joins_at=3),
    Stream("bass", 90, GenerationParams(duration_s=1, top_k=20, guidance_scale=1.0), 3, joins_at=5, leaves_after=30),
    Stream("a walking bass line and brushed snare", 60, GenerationParams(duration_s=1, top_p=0.9, guidance_scale=3.0),
           4, joins_at=20),
    Stream("strings", 20, GenerationParams(duration_s=1, temperature=0.7, top_k=100, guidance_scale=2.5), 5,
           joins_at=21),  # the ninth row taken: attention then reads 16 rows, not 8
    Stream("noise", 50, GenerationParams(duration_s=1, top_k=250, guidance_scale=2.0), 6, joins_at=270),
    Stream("pads", 25, GenerationParams(duration_s=1, greedy=True, guidance_scale=1.0), 7, joins_at=280,
           leaves_after=10),
    Stream("a drone", 30, GenerationParams(duration_s=1, top_k=50, guidance_scale=3.0), 8, joins_at=290),
]


def _model(load_preset, preset: str, *, arena: bool, max_batch: int = 8, mode: str = "float32") -> MusicGen:
    bundle = load_preset(preset).bundle
    return MusicGen(bundle, engine=EngineOptions.parse(mode + "+nowarmup"), max_batch=max_batch, arena=arena)


def _alone(model: MusicGen, stream: Stream) -> torch.Tensor:
    """The stream's columns `[B, K, T]` decoded on its own (in the arena too, where the model has one)."""
    cond = build_conditioning(model.bundle, [stream.text], guidance_scale=stream.params.guidance_scale)
    columns = decoder_columns(model.engine.decoder, model.bundle, cond, None, stream.frames, stream.params,
                              seeded_rng(stream.seed))
    made = []
    for column in columns:
        made.append(column)
        if stream.leaves_after is not None and len(made) == stream.leaves_after:
            columns.close()
            break
    return torch.stack(made, dim=-1)


def _together(model: MusicGen, streams: list[Stream]) -> list[torch.Tensor]:
    """The streams in the shared batch, driven from this one thread so who steps with whom is fixed:
    each round reads one column of every stream in it (the first read runs the shared step for all)."""
    batch, bundle = model.batch, model.bundle
    live: dict[int, tuple] = {}
    made: list[list[torch.Tensor]] = [[] for _ in streams]
    step = 0
    while step == 0 or live:
        for index, stream in enumerate(streams):
            if stream.joins_at == step:
                cond = build_conditioning(bundle, [stream.text], guidance_scale=stream.params.guidance_scale)
                live[index] = batch.columns(bundle, cond, None, stream.frames, stream.params, seeded_rng(stream.seed),
                                            label=str(index))
        for index in list(live):
            column = next(live[index], None)
            stream = streams[index]
            if column is None:
                del live[index]
                continue
            made[index].append(column)
            if stream.leaves_after is not None and len(made[index]) == stream.leaves_after:
                live.pop(index).close()
        step += 1
        assert step < 2000
    return [torch.stack(columns, dim=-1) for columns in made]


@pytest.mark.parametrize("preset", ["debug/musicgen", "debug/musicgen-stereo"])
@pytest.mark.parametrize("count", [1, 3, 8])
def test_a_stream_in_the_arena_gives_its_codes_alone(load_preset, preset, count):
    model = _model(load_preset, preset, arena=True)
    arena = model.engine.decoder.arena
    assert arena is not None and arena.rows == 16
    streams = {1: [STREAMS[0]], 3: [STREAMS[0], STREAMS[2], STREAMS[5]], 8: STREAMS}[count]
    alone = [_alone(model, stream) for stream in streams]
    run, lengths = arena._run, set()

    def counted(tokens, at, writes, length, live):
        stepping = writes[writes < arena.positions]
        lengths.add((length, int(stepping.min()), int(writes.max()), live))
        return run(tokens, at, writes, length, live)

    arena._run = counted
    together = _together(model, streams)
    arena._run = run
    assert all(top == arena.positions for _, _, top, _ in lengths)  # padding rows wrote the scratch slot
    if count > 1:  # the late joiners stepped in a bucket of 512 slots, alone in one of 256
        assert any(length == 512 and low < 256 for length, low, _, _ in lengths)
    assert {live for *_, live in lengths} == ({8, 16} if count == 8 else {8})
    for stream, one, shared in zip(streams, alone, together, strict=True):
        assert one.shape == shared.shape, stream.text
        assert torch.equal(one, shared), stream.text
    assert arena.free_rows == arena.rows and model.engine.live_caches == 0


def test_rows_that_mix_are_caught(load_preset, monkeypatch):
    """The property above is not vacuous: a step that hands a stream its neighbour's logits changes its codes."""
    model = _model(load_preset, "debug/musicgen", arena=True)
    arena = model.engine.decoder.arena
    step = arena.step

    def swapped(caches, tokens, positions):
        logits = step(caches, tokens, positions)
        return logits[::-1] if len(logits) == 2 and logits[0].shape == logits[1].shape else logits

    monkeypatch.setattr(arena, "step", swapped)
    streams = [dataclasses.replace(STREAMS[0], frames=30), dataclasses.replace(STREAMS[3], joins_at=2)]
    alone = [_alone(model, stream) for stream in streams]
    together = _together(model, streams)
    assert not all(torch.equal(a, b) for a, b in zip(alone, together, strict=True))


@pytest.mark.parametrize("preset", ["debug/musicgen", "debug/musicgen-stereo"])
def test_greedy_codes_of_the_arena_equal_the_eager_step(load_preset, preset):
    """float32, 300 frames (past a bucket of slots): the arena's step (one product over all its rows,
    masked attention over a bucket of slots and padded cross slots) against the eager step of one window.
    The products' shapes differ, so the logits may differ in their last bits: equal codes expected on
    the debug preset (a close argmax could flip: then >= 99 %)."""
    arena_model = _model(load_preset, preset, arena=True)
    eager_model = _model(load_preset, preset, arena=False)
    assert eager_model.engine.decoder.arena is None
    total = agree = 0
    for text, scale in (("an upbeat jazz tune", 3.0), ("drums", 1.0)):
        stream = Stream(text, 300, GenerationParams(duration_s=1, greedy=True, guidance_scale=scale), 0)
        got, expected = _alone(arena_model, stream), _alone(eager_model, stream)
        total += expected.numel()
        agree += int((got == expected).sum())
    assert agree == total, f"{agree / total:.4f} of the codes agree"


def test_the_arena_step_matches_the_eager_logits(load_preset):
    """Logits within float32 rounding of the eager step's, for guided and unguided windows at several
    positions at once: a wrong mask (a row seeing slots past its position) or row would be far off."""
    arena_model = _model(load_preset, "debug/musicgen", arena=True)
    eager = _model(load_preset, "debug/musicgen", arena=False).engine.decoder
    decoder, bundle = arena_model.engine.decoder, arena_model.bundle
    conds = [build_conditioning(bundle, [text], guidance_scale=scale)
             for text, scale in (("an upbeat jazz tune", 3.0), ("drums", 1.0), ("a walking bass line", 3.0))]
    rng = torch.Generator().manual_seed(0)
    lengths = (1, 7, 20)
    inputs = [torch.randint(0, decoder.vocab, (1, bundle.num_codebooks, n), generator=rng) for n in lengths]
    with (decoder.open_cache(2, 40) as a0, decoder.open_cache(1, 40) as a1, decoder.open_cache(2, 40) as a2,
          eager.open_cache(2, 40) as e0, eager.open_cache(1, 40) as e1, eager.open_cache(2, 40) as e2):
        shared, alone = [a0, a1, a2], [e0, e1, e2]
        assert all(BINDING in cache.bindings for cache in shared)
        for caches, model_decoder in ((shared, decoder), (alone, eager)):
            for cache, cond, columns in zip(caches, conds, inputs, strict=True):
                model_decoder.prefill(cache, cond, columns)
        for step in range(5):
            columns = [torch.randint(0, decoder.vocab, (1, bundle.num_codebooks), generator=rng) for _ in conds]
            positions = [n + step for n in lengths]
            got = decoder.step_streams(shared, columns, positions)
            for cache, column, position, logits in zip(alone, columns, positions, got, strict=True):
                expected = eager.step(cache, column, position)
                torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-4)


def test_leaving_frees_the_rows_and_admission_counts_the_arena(load_preset):
    model = _model(load_preset, "debug/musicgen", arena=True, max_batch=2)
    decoder, bundle, batch = model.engine.decoder, model.bundle, model.batch
    arena = decoder.arena
    assert arena is not None and arena.rows == 4
    # A window's admission charge is its rows' share of the arena, allocated once and bounded by it.
    assert decoder.cache_bytes(2, 300, 5) == arena.nbytes // 2
    assert decoder.cache_bytes(2, arena.positions + 1, 5) > 0  # one that cannot live there: its own cache
    stop = {"now": False}
    cond = build_conditioning(bundle, ["a drone"], guidance_scale=3.0)
    params = GenerationParams(duration_s=1, top_k=50)
    columns = batch.columns(bundle, cond, None, 100, params, seeded_rng(1), lambda: stop["now"], label="a")
    next(columns)
    assert arena.free_rows == 2 and batch.snapshot().cache_bytes == arena.nbytes // 2
    stop["now"] = True
    with pytest.raises(Cancelled):
        list(columns)
    assert arena.free_rows == 4 and batch.snapshot().cache_bytes == 0 and model.engine.live_caches == 0


def test_a_window_that_does_not_fit_steps_on_its_own_beside_the_arena(load_preset, caplog):
    """Two guided windows in an arena of two rows: the second takes today's path, in the same shared
    steps, with the codes it has on a model without an arena."""
    model = _model(load_preset, "debug/musicgen", arena=True, max_batch=1)
    model.batch.max_streams = 2  # the batch admits two; the arena holds one
    eager = _model(load_preset, "debug/musicgen", arena=False)
    streams = [dataclasses.replace(STREAMS[0], frames=40), dataclasses.replace(STREAMS[3], joins_at=2)]
    with caplog.at_level("INFO", logger="daemon.models.musicgen.decoder"):
        together = _together(model, streams)
    assert "does not fit the slot arena" in caplog.text
    assert torch.equal(together[0], _alone(model, streams[0]))
    assert torch.equal(together[1], _alone(eager, streams[1]))


def test_a_condition_swapped_between_steps_reaches_the_arena(load_preset):
    """A jam's live prompt change: the arena takes the window's new cross-attention tensors at its next step."""
    model = _model(load_preset, "debug/musicgen", arena=True)
    eager = _model(load_preset, "debug/musicgen", arena=False).engine.decoder
    decoder, bundle = model.engine.decoder, model.bundle
    first = build_conditioning(bundle, ["an upbeat jazz tune"], guidance_scale=3.0)
    second = build_conditioning(bundle, ["slow dark ambient drones with a long text prompt"], guidance_scale=3.0)
    head = torch.full((1, bundle.num_codebooks, 1), bundle.pad_token_id)
    column = torch.zeros((1, bundle.num_codebooks), dtype=torch.long)

    def after_swap(on, swap_to) -> torch.Tensor:
        with on.open_cache(2, 8) as cache:
            on.prefill(cache, first, head)
            on.step(cache, column, 1)
            if swap_to is not None:
                on.set_condition(cache, swap_to)
            return on.step(cache, column, 2)

    kept, swapped = after_swap(decoder, None), after_swap(decoder, second)
    assert not torch.allclose(kept, swapped, atol=1e-3)
    torch.testing.assert_close(swapped, after_swap(eager, second), rtol=1e-4, atol=1e-4)


def test_the_compiled_arena_step_agrees_with_the_eager_one(load_preset):
    """`+compile` captures the arena's step (a fixed shape per bucket of slots; on a GPU a CUDA graph with
    the arena's buffers at fixed addresses). Inductor may fuse the sums in another order: greedy codes
    within 1 % (they were equal over 300 frames of debug/musicgen, 2026-12-06)."""
    eager = _model(load_preset, "debug/musicgen", arena=True, max_batch=2)
    compiled = _model(load_preset, "debug/musicgen", arena=True, max_batch=2, mode="float32+compile")
    assert compiled.engine.decoder.arena is not None and compiled.engine.decoder.compiled
    stream = Stream("an upbeat jazz tune", 40, GenerationParams(duration_s=1, greedy=True, guidance_scale=3.0), 0)
    got, expected = _alone(compiled, stream), _alone(eager, stream)
    assert float((got == expected).float().mean()) >= 0.99


def test_the_arena_replayed_from_graphs_gives_the_eager_arena_codes(load_preset):
    """Graphs captured when the arena is made (by rows read, 8 or 16, two lengths of slots each: a bucket,
    then every slot), the step's inputs copied into their static tensors before each replay: 8 streams
    together give the codes each gives alone on the eager arena, bit for bit, and nothing is captured
    while they play."""
    eager = _model(load_preset, "debug/musicgen", arena=True)
    graphed = _model(load_preset, "debug/musicgen", arena=True)
    ReplayGraph.captures = 0
    graphed.engine.decoder.arena.use_graphs(ReplayGraph)
    assert ReplayGraph.captures == 4 and graphed.engine.decoder.arena.graphed
    alone = [_alone(eager, stream) for stream in STREAMS]
    together = _together(graphed, STREAMS)
    for stream, one, shared in zip(STREAMS, alone, together, strict=True):
        assert torch.equal(one, shared), stream.text
    assert ReplayGraph.captures == 4


def test_a_stream_keeps_its_codes_in_rows_far_down_the_arena(load_preset):
    """Attention reads only the rows up to the last stepping one (8, then 16 here): a stream in rows 12-13
    (the first twelve held by idle windows) makes the codes it makes in rows 0-1."""
    model = _model(load_preset, "debug/musicgen", arena=True)
    decoder = model.engine.decoder
    assert decoder.arena.row_buckets == [8, 16]
    first = _alone(model, STREAMS[0])
    with ExitStack() as held:
        idle = [held.enter_context(decoder.open_cache(2, 10)) for _ in range(6)]
        assert idle[-1].bindings[BINDING].start == 10 and decoder.arena.free_rows == 4
        assert torch.equal(_alone(model, STREAMS[0]), first)
