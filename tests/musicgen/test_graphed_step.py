"""The compiled step replayed from a graph (graphed_step.py), with a stand-in for the GPU's CUDA graph
that replays by calling the captured function again on the same static tensors: what the plumbing must
get right (static inputs refreshed, a window's condition copied in, kept caches reused) is then checked
on the CPU. On a GPU `bash bench/gpu/run.sh` measures the real graphs."""

from __future__ import annotations

import torch

from daemon.models.musicgen.conditioning import build_conditioning
from daemon.models.musicgen.engine import MusicgenEngine
from daemon.models.musicgen.loop import plan_window
from daemon.models.musicgen.options import EngineOptions
from protocol.params import GenerationParams

from graph_stand_in import ReplayGraph


def _columns(engine, bundle, prompt: str, frames: int) -> torch.Tensor:
    cond = build_conditioning(bundle, [prompt], guidance_scale=3.0)
    params = GenerationParams(duration_s=frames / bundle.frame_rate, greedy=True, guidance_scale=3.0)
    return torch.stack(list(engine.columns(cond, None, frames, params, None)), dim=-1)


def test_graphed_windows_give_the_eager_codes_and_reuse_their_cache_and_graph(load_preset):
    bundle = load_preset("debug/musicgen").bundle
    eager = MusicgenEngine(bundle, EngineOptions(warmup=False))
    graphed = MusicgenEngine(bundle, EngineOptions(compile=True, warmup=False))
    graphed.decoder.use_graphs(ReplayGraph)
    ReplayGraph.captures = 0
    # Two windows one after the other, other prompts (other text lengths) and lengths in one bucket: the
    # second takes the first's kept cache and replays its graph with its own condition copied in.
    for prompt, frames in (("a walking bass", 20), ("drums and a very long description of a busy groove", 14)):
        assert torch.equal(_columns(graphed, bundle, prompt, frames), _columns(eager, bundle, prompt, frames))
    assert ReplayGraph.captures == 1
    assert graphed.live_caches == 0 and graphed.decoder._graphs is not None and graphed.decoder._graphs.kept == 1


def test_a_condition_swapped_between_steps_reaches_the_graph(load_preset):
    """A jam swaps a running window's condition (`set_condition`): the graph's static copies take it."""
    bundle = load_preset("debug/musicgen").bundle
    first = build_conditioning(bundle, ["a walking bass"], guidance_scale=3.0)
    second = build_conditioning(bundle, ["glitchy techno"], guidance_scale=3.0)
    logits = []
    for graphs in (False, True):
        engine = MusicgenEngine(bundle, EngineOptions(compile=True, warmup=False))
        if graphs:
            engine.decoder.use_graphs(ReplayGraph)
        decoder = engine.decoder
        pattern, first_slot = plan_window(bundle, first, None, 12)
        column = torch.full((1, bundle.num_codebooks), 7, dtype=torch.long)
        with decoder.open_cache(2, first_slot + 12) as cache:
            decoder.prefill(cache, first, pattern.inputs)
            made = [decoder.step(cache, column, first_slot + i) for i in range(3)]
            decoder.set_condition(cache, second)
            made += [decoder.step(cache, column, first_slot + i) for i in range(3, 6)]
        logits.append(torch.stack(made))
    assert torch.equal(logits[0], logits[1])
    # The swap changed what the steps after it attend to.
    assert not torch.equal(logits[1][3], logits[1][2])


def test_the_daemons_warm_up_compiles_and_captures_both_cache_shapes(load_preset):
    """The daemon's load warms both cache lengths a compiled step has (decoder.POSITION_BUCKET), so
    neither a short job nor a long one captures (on a GPU: compiles, 20-25 s) in its first window."""
    from daemon.models.musicgen.decoder import POSITION_BUCKET

    bundle = load_preset("debug/musicgen").bundle
    eager = MusicgenEngine(bundle, EngineOptions(warmup=False))
    graphed = MusicgenEngine(bundle, EngineOptions(compile=True, warmup=False))
    graphed.decoder.use_graphs(ReplayGraph)
    graphed.warm_up(long_windows=True)
    warmed = ReplayGraph.captures = 0
    long_frames = POSITION_BUCKET + 20  # a cache past the short shape
    for prompt, frames in (("a walking bass", 20), ("slow dub chords", long_frames)):
        assert torch.equal(_columns(graphed, bundle, prompt, frames), _columns(eager, bundle, prompt, frames))
    assert ReplayGraph.captures == warmed
    # Without the long windows' warm-up, the long job captured its shape itself.
    cold = MusicgenEngine(bundle, EngineOptions(compile=True, warmup=False))
    cold.decoder.use_graphs(ReplayGraph)
    cold.warm_up()
    ReplayGraph.captures = 0
    _columns(cold, bundle, "slow dub chords", long_frames)
    assert ReplayGraph.captures == 1
