"""The jam's engine (issue 14): endless windows that slide without a gap, changes from the next frame,
weighted prompts, and a state that resumes bit-exactly. On debug/musicgen with a 1 s window so
slides come every 0.7 s; int8 runs riffd's native step where this CPU has it."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from daemon.models.musicgen import kv_cache
from daemon.models.musicgen.conditioning import build_conditioning
from daemon.models.musicgen.jam.decoding import EngineDecoder
from daemon.models.musicgen.jam.prompts import PromptEncoder, WeightedPrompts
from daemon.models.musicgen.jam import state as jam_state
from daemon.models.musicgen.jam.state import load_state, save_state
from daemon.models.musicgen.jam.stream import JamStream
from daemon.models.musicgen.jam.types import Change, JamSampling, JamShape
from daemon.models.musicgen.engine import MusicgenEngine
from daemon.models.musicgen.speed import EngineOptions
from daemon.models.musicgen.streaming_codec import MusicgenCodec, StreamSettings
from protocol.errors import BadSnapshot

SHAPE = JamShape(window_frames=50, context_frames=15)
SETTINGS = StreamSettings(first_chunk_frames=5, chunk_frames=10)


@pytest.fixture(scope="module", params=["float32", "int8", "int8a8+kv4"])
def engine(request, musicgen) -> Iterator[MusicgenEngine]:
    # int8a8+kv4: the snapshot carries the packed 4-bit cache (uint8 slots) and its scales, with an
    # int8 head shorter than a window (the default 64 would cover these 50-frame windows whole)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(kv_cache, "INT8_HEAD_POSITIONS", 7)
        yield MusicgenEngine(musicgen.bundle, EngineOptions.parse(request.param + "+nowarmup"))


def _jam(engine: MusicgenEngine, encoder: PromptEncoder | None = None, seed: int = 7) -> JamStream:
    return JamStream(EngineDecoder(engine), engine.bundle, _codec(engine), encoder or PromptEncoder(engine.bundle),
                     SHAPE, prompts=WeightedPrompts.of(("dub",)), sampling=JamSampling(), seed=seed,
                     stream_settings=SETTINGS)


def _codec(engine: MusicgenEngine) -> MusicgenCodec:
    return MusicgenCodec.for_bundle(engine.bundle)


def _run(stream: JamStream, steps: int, changes: dict[int, Change] | None = None, *, idle_every: int = 3,
         snapshot_at: int | None = None) -> tuple[np.ndarray, list, object]:
    """Step `stream`; its audio joined (checking the blocks are contiguous), the changes applied, a state."""
    blocks, applied, state = [], [], None
    for step in range(steps):
        if changes and step in changes:
            stream.submit(changes[step])
        if step == snapshot_at:
            state = stream.state()
        if idle_every and step % idle_every == 0:
            stream.background_work()  # how the daemon spends the jam's idle time; no effect on the audio
        new, done = stream.step()
        blocks += new
        applied += done
    expected = blocks[0].offset_samples if blocks else 0
    for block in blocks:
        assert block.offset_samples == expected, "blocks are contiguous"
        expected += block.frames
    audio = np.concatenate([b.audio for b in blocks], axis=1) if blocks else np.zeros((1, 0), np.float32)
    return audio, applied, state


def test_slides_are_seamless_and_a_seeded_jam_repeats_itself(engine) -> None:
    stream = _jam(engine)
    audio, _, _ = _run(stream, 200)
    assert stream.slides >= 3, "the 50-frame window slid on several times"
    # One frame a step, but for each window's delay ramp (3 steps): no frame is lost at a slide.
    assert stream.frames == 200 - 3 * (1 + stream.slides)
    assert audio.shape[1] >= (stream.frames - 10) * engine.bundle.hop_length
    assert np.isfinite(audio).all() and np.abs(audio).max() > 0
    again, _, _ = _run(_jam(engine), 200, idle_every=0)  # no idle-time work at all: the same samples
    np.testing.assert_array_equal(again, audio)
    other, _, _ = _run(_jam(engine, seed=8), 200)
    assert not np.array_equal(other, audio)
    stream.close()
    assert engine.live_caches == 0


def test_changes_apply_at_their_frame_and_change_what_follows(engine) -> None:
    hop = engine.bundle.hop_length
    base, _, _ = _run(_jam(engine), 120)
    change = Change(prompts=WeightedPrompts.of(("tabla", "dub"), (0.3, 0.7)), at_frame=60, token="p")
    changed, applied, _ = _run(_jam(engine), 120, {10: change})
    assert applied == [("p", 60)]
    # Until shortly before the frame nothing moved: the finer codebooks of the 3 frames before it are
    # sampled with it (the delay pattern), and the codec holds audio until 2402 samples after it exist.
    same = (60 - 3) * hop - _codec(engine).lookahead_samples - hop
    np.testing.assert_array_equal(changed[:, :same], base[:, :same])
    assert not np.array_equal(changed[:, 60 * hop:], base[:, 60 * hop:120 * hop])
    # Without a frame, a change applies at the next one.
    _, applied, _ = _run(_jam(engine), 40, {20: Change(sampling=(("temperature", 1.5),), token="t")})
    assert applied == [("t", 20 - 1 + 1)]  # step 20 samples the column of frame 20


def test_one_prompt_of_any_weight_is_plain_text_conditioning(musicgen) -> None:
    encoder = PromptEncoder(musicgen.bundle)
    plain = build_conditioning(musicgen.bundle, ["dub"], guidance_scale=3.0)
    for weights in ((1.0,), (0.25,)):
        cond = encoder.conditioning(WeightedPrompts.of(("dub",), weights))
        assert torch.equal(cond.hidden_states, plain.hidden_states) and cond.attention_bias is None
    blended = encoder.conditioning(WeightedPrompts.of(("dub", "tabla", "x"), (2.0, 1.0, 0.0)))
    dub = plain.hidden_states.shape[1]
    tabla = build_conditioning(musicgen.bundle, ["tabla"], guidance_scale=3.0).hidden_states.shape[1]
    # A zero weight drops its prompt; the others attend side by side, the weaker one's scores lowered by log(1/2).
    assert blended.hidden_states.shape[1] == dub + tabla
    assert torch.allclose(blended.attention_bias[0, :dub], torch.zeros(dub))
    assert torch.allclose(blended.attention_bias[0, dub:], torch.full((tabla,), float(np.log(0.5))))
    assert torch.equal(blended.attention_bias[1], torch.zeros(dub + tabla)), "the null row is not biased"


@pytest.mark.parametrize("snapshot_step", [30, 44])
def test_a_restored_state_goes_on_sample_for_sample(engine, tmp_path, snapshot_step: int) -> None:
    """Snapshot mid-window (step 30) and while the next window's cache is half built (44), then a
    prompt change and a temperature change after the snapshot: the resumed jam's audio equals the
    original's after the snapshot point, across the slides that follow."""
    encoder = PromptEncoder(engine.bundle)
    later = {60: Change(prompts=WeightedPrompts.of(("tabla", "dub"), (0.6, 0.4)), at_frame=80, token="p"),
             61: Change(sampling=(("temperature", 1.3), ("top_k", 50)), at_frame=95, token="t")}
    original = _jam(engine, encoder)
    audio, _, state = _run(original, 220, later, snapshot_at=snapshot_step)
    assert (state.shadow is not None) == (snapshot_step == 44)
    path = tmp_path / "jam.riffdjam"
    identity = {"model": "debug/musicgen", "engine": engine.options.name}
    save_state(path, state, identity=identity, offset_samples=int(state.codec["emitted"]))
    loaded, offset = load_state(path, identity=identity)
    resumed = JamStream.restore(EngineDecoder(engine), engine.bundle, _codec(engine), PromptEncoder(engine.bundle),
                                loaded)
    rest, _, _ = _run(resumed, 220 - snapshot_step, {step - snapshot_step: change for step, change in later.items()},
                      idle_every=5)
    assert resumed.slides >= 2
    np.testing.assert_array_equal(rest, audio[:, offset:offset + rest.shape[1]])
    assert rest.shape[1] > audio.shape[1] - offset - 20 * engine.bundle.hop_length


@pytest.mark.parametrize("at_frame", [60, None])
def test_a_change_waiting_at_the_snapshot_is_in_it(engine, tmp_path, at_frame: int | None) -> None:
    """QA: a snapshot taken while a change waited for its frame (`at_samples`) resumed without it, and
    diverged just before that frame. The waiting change (or one submitted but not stepped yet) is
    saved: the resumed jam, given no change at all, equals the original sample for sample across it."""
    encoder = PromptEncoder(engine.bundle)
    change = Change(prompts=WeightedPrompts.of(("metal",)), sampling=(("temperature", 2.5), ("top_k", 50)),
                    at_frame=at_frame, token="p")
    original = _jam(engine, encoder, seed=5)
    snapshot_step = 30 if at_frame is not None else 25
    audio, applied, state = _run(original, 120, {25: change}, snapshot_at=snapshot_step)
    assert applied == [("p", at_frame if at_frame is not None else 25)]
    assert len(state.pending) == 1 and state.pending[0].token is None and state.seed == 5
    path = tmp_path / "pending.riffdjam"
    identity = {"model": "debug/musicgen", "engine": engine.options.name}
    save_state(path, state, identity=identity, offset_samples=int(state.codec["emitted"]))
    loaded, offset = load_state(path, identity=identity)
    assert loaded.pending == state.pending and loaded.seed == 5
    resumed = JamStream.restore(EngineDecoder(engine), engine.bundle, _codec(engine), PromptEncoder(engine.bundle),
                                loaded)
    rest, resumed_applied, _ = _run(resumed, 120 - snapshot_step)
    assert resumed_applied == [], "a restored change has no requester to answer"
    hop = engine.bundle.hop_length
    assert offset < (at_frame or 25) * hop < offset + rest.shape[1] - 20 * hop, "the change is inside the compared audio"
    np.testing.assert_array_equal(rest, audio[:, offset:offset + rest.shape[1]])
    resumed.close()
    original.close()


def test_a_version_2_snapshot_still_resumes_with_nothing_waiting(engine, tmp_path) -> None:
    """Version 3 added the waiting changes and the seed; a version 2 file (without them) still loads."""
    import json

    from safetensors.torch import load_file, safe_open, save_file

    stream = _jam(engine)
    audio, _, state = _run(stream, 80, snapshot_at=30)
    path = tmp_path / "v2.riffdjam"
    identity = {"model": "debug/musicgen", "engine": engine.options.name}
    save_state(path, state, identity=identity, offset_samples=int(state.codec["emitted"]))
    with safe_open(str(path), framework="pt") as handle:
        meta = json.loads(handle.metadata()["riffd"])
    assert meta["version"] == 3 and meta["pending"] == [] and meta["seed"] == 7
    del meta["pending"], meta["seed"]
    save_file(load_file(str(path)), str(path), metadata={"riffd": json.dumps({**meta, "version": 2})})
    loaded, offset = load_state(path, identity=identity)
    assert loaded.pending == [] and loaded.seed is None
    resumed = JamStream.restore(EngineDecoder(engine), engine.bundle, _codec(engine), PromptEncoder(engine.bundle),
                                loaded)
    rest, _, _ = _run(resumed, 50)
    np.testing.assert_array_equal(rest, audio[:, offset:offset + rest.shape[1]])
    resumed.close()
    stream.close()


def test_a_snapshot_from_before_float16_kv4_scales_is_refused(engine, tmp_path, monkeypatch) -> None:
    """Version 2 keeps the +kv4 cache's scales in float16 (kv_cache.SCALES4): a version 1 snapshot is
    refused naming both versions and the change, and saved scales of another dtype are never converted."""
    stream = _jam(engine)
    _run(stream, 10)
    state = stream.state()
    # what riffd wrote before: float32 scales (the other engines' were float32 already)
    old = dataclasses.replace(state, window=dataclasses.replace(state.window, slots={
        name: tensor.float() if "scales" in name else tensor for name, tensor in state.window.slots.items()}))
    path = tmp_path / "old.riffdjam"
    identity = {"model": "debug/musicgen", "engine": engine.options.name}
    with monkeypatch.context() as patch:
        patch.setattr(jam_state, "VERSION", 1)
        save_state(path, old, identity=identity, offset_samples=int(state.codec["emitted"]))
    with pytest.raises(BadSnapshot, match=r"version 1 jam snapshot; this riffd reads versions 2 to 3 \(changed since: "
                                          r"2: the \+kv4 attention cache's scales are float16"):
        load_state(path, identity=identity)
    if engine.decoder.cache_dtype == kv_cache.PACKED4:
        assert all(t.dtype == kv_cache.SCALES4 for name, t in state.window.slots.items() if "scales" in name)
        with pytest.raises(ValueError, match="key_scales are torch.float32, this decoder's torch.float16"):
            JamStream.restore(EngineDecoder(engine), engine.bundle, _codec(engine), PromptEncoder(engine.bundle), old)
    stream.close()


def test_bad_snapshots_are_refused_with_a_reason(engine, tmp_path) -> None:
    stream = _jam(engine)
    _run(stream, 10)
    path = tmp_path / "jam.riffdjam"
    state = stream.state()
    save_state(path, state, identity={"model": "debug/musicgen", "engine": "float32"},
               offset_samples=int(state.codec["emitted"]))
    with pytest.raises(BadSnapshot, match="model 'debug/musicgen'; this jam runs 'random/musicgen-small'"):
        load_state(path, identity={"model": "random/musicgen-small"})
    with pytest.raises(BadSnapshot, match="engine mode 'float32'; this jam runs 'int8'"):
        load_state(path, identity={"model": "debug/musicgen", "engine": "int8"})
    corrupt = tmp_path / "corrupt.riffdjam"
    corrupt.write_bytes(path.read_bytes()[:200])
    with pytest.raises(BadSnapshot, match="not a riffd jam snapshot"):
        load_state(corrupt, identity={})
    foreign = tmp_path / "foreign.riffdjam"
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(2)}, str(foreign), metadata={"format": "other"})
    with pytest.raises(BadSnapshot, match="no riffd-jam header"):
        load_state(foreign, identity={})
    with pytest.raises(BadSnapshot, match="no snapshot file"):
        load_state(tmp_path / "missing.riffdjam", identity={})
    stream.close()
