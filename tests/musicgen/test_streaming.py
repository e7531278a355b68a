"""stream(): chunks in order while generating, equal to a one-shot decode of the same codes
(float rounding apart), across long-form windows; first chunk as soon as its frames and the
codec's lookahead exist; stopping frees the cache.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from daemon.audio.types import Audio
from daemon.models.musicgen.delay import delay_steps
from daemon.models.musicgen.backend import MusicGen
from daemon.models.musicgen.options import EngineOptions
from daemon.models.musicgen.streaming_codec import CodecStream, StreamSettings
from protocol.errors import Cancelled, InvalidArgument
from protocol.params import GenerationParams

SETTINGS = StreamSettings(first_chunk_frames=5, chunk_frames=20)
# Windows of 60 frames continuing the last 20: a 3.3 s stream crosses four window seams.
PARAMS = GenerationParams(duration_s=3.3, seed=3, top_k=50, extend_stride_s=0.8)
#: The stateful decode equals the one-shot one but for float32 rounding (~130 dB here).
FLOAT_PRECISION_DB = 110


def _short_windows(bundle, engine: EngineOptions | None = EngineOptions(warmup=False)) -> MusicGen:
    return MusicGen(dataclasses.replace(bundle, window_frames=60), engine=engine, stream_settings=SETTINGS)


def _ser_db(signal: np.ndarray, error: np.ndarray) -> float:
    return 10 * math.log10(float((signal ** 2).sum()) / max(float((error ** 2).sum()), 1e-30))


def _joined(chunks) -> np.ndarray:
    offset = 0
    for index, chunk in enumerate(chunks):
        assert chunk.index == index and chunk.offset_samples == offset and chunk.sample_rate == 32000
        assert chunk.audio.dtype == np.float32 and chunk.frames > 0
        offset += chunk.frames
    return np.concatenate([c.audio for c in chunks], axis=1)


def _assert_no_clicks(reference: np.ndarray, streamed: np.ndarray, block: int = 640) -> None:
    """Every 20 ms block is close to the one-shot decode (a click at a seam would stand out)."""
    mean_energy = float((reference ** 2).mean())
    for start in range(0, reference.shape[-1], block):
        error = streamed[..., start:start + block] - reference[..., start:start + block]
        assert float((error ** 2).mean()) <= 1e-3 * mean_energy, f"block at sample {start}"


def test_stream_equals_one_shot_decode_across_windows(load_preset):
    model = _short_windows(load_preset("debug/musicgen").bundle)
    steps = []
    chunks = list(model.stream("a long drone", PARAMS, progress=lambda done, total: steps.append((done, total))))
    render = model.generate(["a long drone"], PARAMS)
    assert len(render.windows) >= 4
    reference = render.audio[0]
    streamed = _joined(chunks)
    assert streamed.shape == reference.shape == (1, round(3.3 * 32000))
    assert _ser_db(reference, streamed - reference) >= FLOAT_PRECISION_DB
    _assert_no_clicks(reference, streamed)
    # Chunk sizes are the settings: a short first one, doubling up to the largest (the last is what is left).
    hop = model.bundle.hop_length
    assert [c.frames // hop for c in chunks] == [5, 5, 10] + [20] * 7 + [5]
    # Progress counts every decode step of every window, in order.
    total = steps[-1][1]
    assert [d for d, _ in steps] == list(range(1, total + 1)) and {t for _, t in steps} == {total}
    assert model.engine.live_caches == 0
    # The reference loop streams the very same audio: the engine changes speed, not music.
    slow = _short_windows(model.bundle, engine=None)
    np.testing.assert_array_equal(_joined(list(slow.stream("a long drone", PARAMS))), streamed)


@pytest.mark.parametrize("preset", ["debug/musicgen-stereo", "debug/musicgen-melody"])
def test_stream_with_audio_prompt_or_melody(load_preset, preset):
    model = _short_windows(load_preset(preset).bundle)
    t = np.arange(16000) / 32000
    tone = Audio(np.stack([np.sin(2 * np.pi * 220 * t), np.sin(2 * np.pi * 330 * t)]).astype(np.float32) * 0.5, 32000)
    params = dataclasses.replace(PARAMS, duration_s=2.0)
    if model.supports_melody:
        kwargs, render = dict(melody=tone), model.generate_with_melody(["folk"], tone, params)
    else:
        kwargs, render = dict(audio_prompt=tone), model.generate_continuation(tone, ["folk"], params)
    streamed = _joined(list(model.stream("folk", params, **kwargs)))
    reference = render.audio[0]
    assert streamed.shape == reference.shape == (model.audio_channels, 64000)
    assert _ser_db(reference, streamed - reference) >= FLOAT_PRECISION_DB
    _assert_no_clicks(reference, streamed)


def test_first_chunk_comes_after_its_own_frames_only(load_preset):
    model = _short_windows(load_preset("debug/musicgen").bundle)
    steps = []
    stream = model.stream(None, PARAMS, progress=lambda done, total: steps.append(done))
    first = next(stream)
    bundle = model.bundle
    # The first chunk's frames, the decoder's lookahead (2402 samples: 4 frames) and the delay pattern's ramp.
    needed = (SETTINGS.first_chunk_frames + 4 + delay_steps(bundle.num_codebooks, bundle.audio_channels))
    assert steps[-1] == needed
    assert first.index == 0 and first.offset_samples == 0
    stream.close()


def test_closing_the_stream_stops_generation_and_frees_the_cache(load_preset):
    model = _short_windows(load_preset("debug/musicgen").bundle)
    steps = []
    stream = model.stream("drums", PARAMS, progress=lambda done, total: steps.append((done, total)))
    next(stream)
    next(stream)
    assert model.engine.live_caches == 1
    stream.close()
    assert model.engine.live_caches == 0
    done, total = steps[-1]
    assert done < total
    # The model serves the next request normally.
    assert sum(c.frames for c in model.stream("drums", dataclasses.replace(PARAMS, duration_s=0.5))) == 16000


def test_should_stop_ends_within_one_step(load_preset):
    model = _short_windows(load_preset("debug/musicgen").bundle)
    steps = []
    stop_after = 70  # inside the second window

    def progress(done: int, total: int) -> None:
        steps.append(done)

    with pytest.raises(Cancelled):
        for _ in model.stream("drums", PARAMS, progress=progress, should_stop=lambda: len(steps) >= stop_after):
            pass
    assert steps[-1] == stop_after
    assert model.engine.live_caches == 0


def test_streaming_decoder_settings_are_checked(load_preset):
    bundle = load_preset("debug/musicgen").bundle
    with pytest.raises(InvalidArgument):
        StreamSettings(chunk_frames=0).validate()
    with pytest.raises(InvalidArgument):
        MusicGen(bundle, stream_settings=StreamSettings(first_chunk_frames=0))
    decoder = CodecStream(bundle, StreamSettings(), total_frames=3)
    with pytest.raises(ValueError):
        decoder.push(torch.zeros((1, bundle.num_codebooks, 4), dtype=torch.long))


@pytest.mark.parametrize("channels", [1, 2])
def test_iter_frames_gives_each_frame_of_the_delayed_columns(channels):
    """`iter_frames` against the delay pattern read directly (codebook k's frame f at column 1 + f + delay_k
    of each window's sequence), across three windows with and without a prompt: mono delays take the
    strided view of the sequence, stereo ones (pairs sharing a delay) the index_select; every frame's
    codes stay as they were once later columns are written."""
    from daemon.models.musicgen.delay import delays, initial_columns
    from daemon.models.musicgen.longform import Window
    from daemon.models.musicgen.streaming import iter_frames

    books, pad = 8, 2048
    bundle = type("Bundle", (), dict(num_codebooks=books, audio_channels=channels, device=torch.device("cpu"),
                                     pad_token_id=pad, window_frames=12))()
    generator = torch.Generator().manual_seed(9)
    codebook_delays = delays(books, channels)
    for prompt in (None, torch.randint(0, 2048, (2, books, 4), generator=generator)):
        windows = [Window(0, 0 if prompt is None else 4, 9, 0), Window(1, 5, 7, 4), Window(2, 6, 3, 11)]
        made: dict[int, torch.Tensor] = {}

        def columns_for(window, window_prompt, made=made):
            head = initial_columns(window_prompt, 2, books, codebook_delays, pad, torch.device("cpu"))
            columns = torch.randint(0, 2048, (2, books, window.new_frames + delay_steps(books, channels)),
                                    generator=generator)
            made[window.index] = torch.cat([head, columns], dim=-1)
            yield from columns.unbind(-1)

        got = list(iter_frames(bundle, windows, prompt=prompt, batch=2, columns_for=columns_for))
        assert all(piece.shape[-1] == 1 for piece in got)
        frames = torch.cat(got, dim=-1)
        want = torch.cat([torch.stack([made[w.index][:, k, 1 + w.prompt_frames + int(d):
                                                      1 + w.prompt_frames + w.new_frames + int(d)]
                                       for k, d in enumerate(codebook_delays)], dim=1) for w in windows], dim=-1)
        assert torch.equal(frames, want)


def test_stream_chunks_pushes_the_codec_only_the_frames_that_complete_a_chunk(load_preset, monkeypatch):
    """Frames wait in `stream_chunks` until they complete a chunk and go to the codec in one push (a push a
    frame cost a step ~80 us of torch calls): every push decodes, and the audio is the bits a push a frame gives,
    in the same chunks, each one out at the same frame."""
    from daemon.models.musicgen.streaming import stream_chunks
    from daemon.models.musicgen.streaming_codec import MusicgenCodec

    bundle = load_preset("debug/musicgen").bundle
    codec = MusicgenCodec.for_bundle(bundle)
    frames = 57
    codes = torch.randint(0, bundle.pad_token_id, (1, bundle.num_codebooks, frames),
                          generator=torch.Generator().manual_seed(4))
    samples = frames * bundle.hop_length - 100
    # The reference: each frame pushed as it comes; the frame at which each block comes out.
    reference = CodecStream(codec, SETTINGS, total_frames=frames)
    want, want_at = [], []
    for f in range(frames):
        for block in reference.push(codes[..., f:f + 1]):
            want.append(block)
            want_at.append(f)
    want += reference.finish()
    pushes: list[int] = []
    push = CodecStream.push

    def counted(self, pushed):
        blocks = push(self, pushed)
        pushes.append(len(blocks))
        return blocks

    monkeypatch.setattr(CodecStream, "push", counted)
    read = []

    def produced():
        for f in range(frames):
            read.append(f)
            yield codes[..., f:f + 1]

    got, got_at = [], []
    for chunk in stream_chunks(codec, produced(), prompt=None, new_frames=frames, samples=samples, start_sample=0,
                               settings=SETTINGS):
        got.append(chunk.audio)
        got_at.append(read[-1])
    assert len(pushes) >= 3 and all(pushes), pushes
    assert got_at == want_at[:len(got_at)] and len(got) == len(want)
    np.testing.assert_array_equal(np.concatenate(got, axis=1), np.concatenate(want, axis=1)[:, :samples])


def test_views_ahead_makes_a_run_of_views_in_one_call_that_see_later_writes():
    """`iter_frames` writes each column and reads each frame through views made `VIEWS_AHEAD` at a time (one made
    a step cost ~20-30 us of torch's indexing): one `make` a run, each view the one indexing gives, still the
    tensor's own memory (written after the view was made), none past the end."""
    from daemon.models.musicgen.streaming import VIEWS_AHEAD, ViewsAhead

    tensor = torch.zeros((2, 3, 2 * VIEWS_AHEAD + 5), dtype=torch.long)
    calls: list[tuple[int, int]] = []

    def make(start: int, count: int):
        calls.append((start, count))
        return tensor[..., start:start + count].unbind(-1)

    views = ViewsAhead(make, tensor.shape[-1])
    for column in range(tensor.shape[-1]):
        views[column].copy_(torch.full((2, 3), column))
    assert calls == [(0, VIEWS_AHEAD), (VIEWS_AHEAD, VIEWS_AHEAD), (2 * VIEWS_AHEAD, 5)]
    assert torch.equal(tensor, torch.arange(tensor.shape[-1]).expand(2, 3, -1))
    assert views[3].data_ptr() == tensor[..., 3].data_ptr()  # back to an earlier run: made again
    with pytest.raises(IndexError):
        views[tensor.shape[-1]]


def test_a_windows_columns_are_rows_written_whole_and_anything_else_through_indexing():
    """`iter_frames` keeps a window's delayed sequence column after column, so a step writes its column as one
    contiguous row (a memmove, where torch's copy_ into a column cost ~50 us a step); a column that is not a
    contiguous int64 CPU `[B, K]` goes through torch's indexing, as does one past the end (an IndexError, never
    a write past the memory)."""
    from daemon.models.musicgen.streaming import _Columns

    columns = _Columns(6, 2, 4, torch.device("cpu"))
    sequence = columns.sequence
    assert sequence.shape == (2, 4, 6) and sequence.stride() == (4, 1, 8)  # column c: elements 8c .. 8c + 7
    want = torch.zeros((2, 4, 6), dtype=torch.long)
    sequence.zero_()
    made = [torch.arange(8).view(2, 4) + 10 * c for c in range(6)]
    made[2] = made[2].t().contiguous().t()  # not contiguous
    made[3] = made[3].to(torch.int32)
    made[4] = made[4][:1]  # [1, K]: broadcast by indexing
    for c, column in enumerate(made):
        columns.write(c, column)
        want[..., c] = column
    assert torch.equal(sequence, want)
    with pytest.raises(IndexError):
        columns.write(6, made[0])
