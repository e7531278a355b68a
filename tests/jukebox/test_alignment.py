"""Lyric alignment (the seed API's `compute_alignments`) against transformers 4.40.2's, and word timing.

The reference (tests/fixtures/jukebox-tiny/alignment.safetensors) is transformers' get_alignment
with its four bugs fixed (make/make_align.py says which and shows them): as shipped it raises, or
would return a projection weight. Cases: the 1b layout (prime attention) over 320 top-level tokens
(windows with moving lyric windows) and over 100 (shorter than a window), and the 5b layout
(cross attention to a lyric encoder) over 200.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from daemon.models.jukebox import JukeboxModel
from daemon.models.jukebox.alignment import AlignedRows, full_alignment
from daemon.models.jukebox.config import JukeboxConfig
from daemon.models.jukebox.lyric_timing import LyricTimer, WordTiming
from daemon.models.jukebox.presets import DEBUG_CONFIG
from daemon.models.jukebox.sampler import SamplingParams, window_starts

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "jukebox-tiny"
CASES = json.loads((FIXTURE / "alignment.json").read_text())["cases"]


@pytest.fixture(scope="module")
def expected() -> dict[str, torch.Tensor]:
    return load_file(str(FIXTURE / "alignment.safetensors"))


@pytest.fixture(scope="module")
def models() -> dict[str, JukeboxModel]:
    return {name: JukeboxModel.from_pretrained(FIXTURE / name) for name in {c["model"] for c in CASES.values()}}


def _aligner(model: JukeboxModel, labels: torch.Tensor, case: dict):
    params = SamplingParams(total_length=case["sample_length"], hop_fraction=model.config.hop_fraction)
    return model.lyric_aligner(labels, params, case["layer"], case["head"])


@pytest.mark.parametrize("name", sorted(CASES))
def test_alignment_equals_the_reference_streamed_window_by_window(name: str, models, expected) -> None:
    case = CASES[name]
    model = models[case["model"]]
    top, labels, want = expected[f"{name}_tokens"], expected[f"{name}_labels"], expected[f"{name}_alignment"].numpy()
    assert want.shape == (top.shape[1], labels.shape[1] - 5) and want.any()
    # Fed as the sampler makes the tokens: each window's end, then the rest.
    aligner = _aligner(model, labels, case)
    n_ctx, total = model.priors[0].n_ctx, top.shape[1]
    ends = [min(s + n_ctx, total) for s in window_starts(total, n_ctx, n_ctx // 8)] if total >= n_ctx else [total]
    rows = [r for end in ends if (r := aligner.advance(top[:, :end])) is not None]
    assert aligner.done and [r.start for r in rows] == [0] + [r.end for r in rows[:-1]] and rows[-1].end == total
    if total > n_ctx:
        assert len(rows) > 2  # rows became final window by window, not all at the end
    got = full_alignment(rows, total, want.shape[1], 1)[0]
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-6)


def test_sampling_with_alignments_keeps_the_tokens_and_aligns_them(models) -> None:
    model = models["."]
    case = dict(CASES["tiny_long"], sample_length=144 * 128)
    labels = load_file(str(FIXTURE / "alignment.safetensors"))["tiny_long_labels"]
    kwargs = dict(sample_levels=[0], sample_length=case["sample_length"], seed=5)
    plain = model.ancestral_sample([labels, labels[:, :5], labels[:, :5]], **kwargs)
    aligned = model.ancestral_sample([labels, labels[:, :5], labels[:, :5]], compute_alignments=True,
                                     alignment_layer=case["layer"], alignment_head=case["head"], **kwargs)
    assert torch.equal(aligned[0], plain[0])  # alignment draws no random numbers
    one_shot = _aligner(model, labels, case)
    want = full_alignment([one_shot.advance(plain[0])], 144, labels.shape[1] - 5, 1)[0]
    assert len(aligned.alignments) == 1
    np.testing.assert_array_equal(aligned.alignments[0], want)


def test_a_prime_s_rows_come_first_and_the_continuation_aligns_like_the_whole(models, expected) -> None:
    """A continuation: the windows the prime fills are aligned before the first token is sampled."""
    model, case = models["."], dict(CASES["tiny_long"], sample_length=176 * 128)
    labels, prime = expected["tiny_long_labels"], expected["tiny_long_tokens"][:, :150]
    stream = model.sample_windows([prime, prime[:, :0], prime[:, :0]], [labels, labels[:, :5], labels[:, :5]],
                                  sample_levels=[0], sample_length=case["sample_length"], seed=2,
                                  compute_alignments=True, alignment_layer=case["layer"], alignment_head=case["head"])
    events = list(stream)
    first = events[0]
    # windows at 0 and 16 lie in the prime (150 tokens): rows before the next window (32) are final at once
    assert isinstance(first, AlignedRows) and (first.start, first.end) == (0, 32)
    rows = [e for e in events if isinstance(e, AlignedRows)]
    top = events[-1].music_tokens[0]
    assert top.shape[1] == 176 and torch.equal(top[:, :150], prime) and rows[-1].end == 176
    whole = _aligner(model, labels, case).advance(top)
    np.testing.assert_array_equal(full_alignment(rows, 176, 38, 1)[0], full_alignment([whole], 176, 38, 1)[0])


def test_models_that_cannot_align_lyrics_say_why(models) -> None:
    model = models["."]
    labels = load_file(str(FIXTURE / "alignment.safetensors"))["tiny_short_labels"]
    params = SamplingParams(total_length=12800)
    # the fixture's config keeps transformers' defaults (layer 68, head 2): outside a 16-layer, 2-head prior
    with pytest.raises(ValueError, match="alignment layer 68 is outside the top prior's 16 layers"):
        model.lyric_aligner(labels, params)
    with pytest.raises(ValueError, match="alignment head 2 is outside"):
        model.lyric_aligner(labels, params, 15, 2)
    with pytest.raises(ValueError, match="layer 14 is a prev_block_attn layer: it does not attend to the lyrics"):
        model.lyric_aligner(labels, params, 14, 0)
    raw = copy.deepcopy(DEBUG_CONFIG)
    raw["prior_config_list"][0].update(nb_relevant_lyric_tokens=0, is_encoder_decoder=False,
                                       attention_pattern="raw_column_previous_row_attention")
    no_lyrics = JukeboxModel(JukeboxConfig.from_dict(raw)).eval()
    with pytest.raises(ValueError, match="not conditioned on lyrics"):
        no_lyrics.ancestral_sample([labels[:, :5]] * 3, sample_levels=[0], sample_length=12800, compute_alignments=True)


def _rows(start: int, columns: list[int], argmax_columns: list[int | None]) -> AlignedRows:
    """Rows whose attention peaks at the given column (None: no attention at all)."""
    values = np.zeros((1, len(argmax_columns), len(columns)), dtype=np.float32)
    for row, column in enumerate(argmax_columns):
        if column is not None:
            values[0, row, :] = 0.1
            values[0, row, columns.index(column)] = 0.6
    return AlignedRows(start, start + len(argmax_columns), np.asarray(columns), values)


def test_word_timing_by_hand() -> None:
    # characters: "la la\nhey yo" -> words (0, 1) "la", (3, 4) "la", (6, 8) "hey", (10, 11) "yo"
    timer = LyricTimer("la la\nhey yo", total_rows=12)
    columns = list(range(13))
    # the key at column c holds character c - 1: column 1 is "l", 0 the start (no character)
    ended = timer.rows(_rows(0, columns, [0, None, 1, 2, 1, 3]))
    assert ended == [WordTiming(0, "la", 2, 5)]  # sung from row 2, past its "a" (char 1) at row 5 (char 2)
    # column 1 again at row 4 moved nothing: singing only goes forward
    ended = timer.rows(_rows(6, columns, [5, 8, None, 9, 9]))
    assert ended == [WordTiming(1, "la", 6, 7)]  # reached at row 6 (char 4, its "a"), left at row 7 ("e" of "hey")
    assert timer.finish() == [WordTiming(2, "hey", 7, 12)]  # still sung at the end: ends with the piece
    assert timer.finish() == []
    # a jump over whole words times them on the row of the jump; "yo" is never reached, never sent
    timer = LyricTimer("la la\nhey yo", total_rows=4)
    assert timer.rows(_rows(0, columns, [None, 8])) == [WordTiming(0, "la", 1, 1), WordTiming(1, "la", 1, 1)]
    assert timer.finish() == [WordTiming(2, "hey", 1, 4)]


def test_lyric_timing_on_a_model_without_lyrics_is_an_invalid_argument_before_sampling(riffd_cache: Path) -> None:
    from daemon.backend import JobContext
    from daemon.jobs import Job
    from daemon.models import registry
    from daemon.models.jukebox.backend import JukeboxBackend
    from protocol.errors import InvalidArgument
    from protocol.messages import JukeboxSample
    from protocol.params import GenerationParams

    preset = registry.load_backend("debug/jukebox", device="cpu", cache_dir=riffd_cache)
    assert isinstance(preset, JukeboxBackend)
    raw = copy.deepcopy(DEBUG_CONFIG)
    raw["prior_config_list"][0].update(nb_relevant_lyric_tokens=0, is_encoder_decoder=False,
                                       attention_pattern="raw_column_previous_row_attention")
    backend = JukeboxBackend(JukeboxModel(JukeboxConfig.from_dict(raw)).eval(), preset.tokenizer, "no-lyrics")
    request = JukeboxSample(duration_s=0.4, lyrics="la la", lyric_timing=True)
    job = Job(id="j", request=request, model="no-lyrics", params=GenerationParams(duration_s=0.4))
    steps, sent = [], []
    context = JobContext(seed=1, read_audio=lambda source: None, resolve_input=Path,
                         progress=lambda done, total: steps.append(done), should_stop=lambda: False,
                         yield_to_higher=lambda: None, emit=sent.append)
    with pytest.raises(InvalidArgument, match="lyric_timing on no-lyrics: this Jukebox model is not conditioned "
                                              "on lyrics") as caught:
        list(backend.run_job(job, context))
    assert caught.value.code == "invalid_argument" and not steps and not sent
