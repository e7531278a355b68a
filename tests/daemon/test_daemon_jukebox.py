"""Jukebox served by the daemon over ZeroMQ and OSC: the real debug/jukebox preset through the registry.

Pieces are a fraction of a second (16384 samples = one top-level window) so each job takes
about a second on the CPU; the final audio is checked against the batch API on the same seed.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from daemon_harness import DaemonThread, Monitor, OscDump, oscsend

from clients import Client
from daemon.models.jukebox import JukeboxModel, JukeboxTokenizer
from daemon.models.registry import resolve_folder
from daemon.seeds import DRAWN_SEED_LIMIT
from daemon.audio.resample import conform
from daemon.audio.types import Audio
from protocol.messages import (
    Accepted, Chunk, Done, Error, JukeboxSample, Lyric, Progress, Started,
)

SAMPLE_RATE = 44100
PIECE_SAMPLES = 16384  # one top-level window of debug/jukebox: 128 tokens of 128 samples
PIECE_S = PIECE_SAMPLES / SAMPLE_RATE
LABELS = dict(artist="Zac Brown Band", genres="Country", lyrics="Chicken fried, cold beer on a Friday night")


@pytest.fixture(scope="module")
def reference(riffd_cache: Path) -> tuple[JukeboxModel, JukeboxTokenizer]:
    """The same preset loaded beside the daemon, for the batch API's answer."""
    folder = resolve_folder("debug/jukebox", cache_dir=riffd_cache)
    return JukeboxModel.from_pretrained(folder), JukeboxTokenizer.from_pretrained(folder)




def _stages(events: list) -> tuple[list[Chunk], list[Chunk]]:
    chunks = [e for e in events if isinstance(e, Chunk)]
    return [c for c in chunks if c.stage == "preview"], [c for c in chunks if c.stage == "final"]


def _joined(chunks: list[Chunk]) -> np.ndarray:
    assert [c.index for c in chunks] == list(range(len(chunks)))
    offsets = np.cumsum([0] + [c.frames for c in chunks[:-1]])
    assert [c.offset_samples for c in chunks] == offsets.tolist()
    return np.concatenate([c.audio for c in chunks], axis=1)


def test_sample_streams_a_preview_then_the_upsampled_audio_of_the_batch_api(
        jukebox_daemon: DaemonThread, reference) -> None:
    model, tokenizer = reference
    with Client(jukebox_daemon.zmq) as client:
        events = list(client.jukebox_sample(PIECE_S, seed=7, model="debug/jukebox", job="jb-zmq", **LABELS))
    kinds = [type(e) for e in events]
    assert kinds[0] is Accepted and kinds[1] is Started and kinds[-1] is Done, kinds
    assert events[1].sample_rate == SAMPLE_RATE and events[1].channels == 1
    preview, final = _stages(events)
    chunk_positions = [i for i, e in enumerate(events) if isinstance(e, Chunk)]
    # Every preview chunk comes before the first final one, and both stages stream in pieces.
    assert len(preview) > 1 and len(final) > 1
    assert max(chunk_positions[: len(preview)]) < min(chunk_positions[len(preview):])
    assert all(e.stage == "preview" for e in events[chunk_positions[0]: chunk_positions[len(preview) - 1] + 1])
    progress = [e for e in events if isinstance(e, Progress)]
    assert progress and progress[-1].done == progress[-1].total > 0
    # Progress keeps coming while upsampling: some of it arrives between final chunks.
    first_final = events.index(final[0])
    assert any(isinstance(e, Progress) for e in events[first_final:])

    labels = tokenizer(artist=LABELS["artist"], genres=LABELS["genres"], lyrics=LABELS["lyrics"])["input_ids"]
    tokens = model.ancestral_sample(labels, sample_length=PIECE_SAMPLES, seed=7)
    with torch.no_grad():
        want_preview = model.decode_level(tokens, 0)[0].T.numpy()
        want_final = model.decode_level(tokens, 2)[0].T.numpy()
    np.testing.assert_allclose(_joined(preview), want_preview, atol=1e-5)
    np.testing.assert_allclose(_joined(final), want_final, atol=1e-5)
    assert events[-1].frames == PIECE_SAMPLES and events[-1].path is None


def test_saved_sample_keeps_its_codes_and_upsample_by_job_id_reuses_them(
        jukebox_daemon: DaemonThread, reference) -> None:
    model, _ = reference
    out = jukebox_daemon.config.out_dir.resolve()
    with Client(jukebox_daemon.zmq) as client:
        sketch = list(client.jukebox_sample(PIECE_S, seed=3, upsample=False, save=True,
                                            model="debug/jukebox", job="jb-sketch", **LABELS))
        assert isinstance(sketch[-1], Done), sketch[-1]
        # A top-level-only sketch: its decode is the job's audio, no preview stage.
        preview, final = _stages(sketch)
        assert not preview and final
        saved, rate = sf.read(sketch[-1].path, dtype="float32", always_2d=True)
        assert rate == SAMPLE_RATE and saved.shape == (PIECE_SAMPLES, 1)
        np.testing.assert_allclose(saved[:, 0], _joined(final)[0], atol=1e-4)  # float WAV: exact up to subtype
        codes = np.load(out / "jb-sketch.codes.npz")
        assert codes["top"].shape == (PIECE_SAMPLES // 128,) and str(codes["artist"]) == LABELS["artist"]

        upsampled = list(client.jukebox_upsample("jb-sketch", seed=5, model="debug/jukebox", job="jb-up"))
    assert isinstance(upsampled[-1], Done), upsampled[-1]
    preview, final = _stages(upsampled)
    # The preview of an upsample is the sketch's audio again: the same top-level codes.
    np.testing.assert_allclose(_joined(preview), _joined(_stages(sketch)[1]), atol=1e-6)
    # Labels come from the codes file: the upsample equals the batch API's on the same codes and seed.
    _, tokenizer = reference
    labels = tokenizer(artist=LABELS["artist"], genres=LABELS["genres"], lyrics=LABELS["lyrics"])["input_ids"]
    top = torch.from_numpy(codes["top"]).long()[None]
    empty = torch.zeros(1, 0, dtype=torch.long)
    tokens = model.upsample([top, empty, empty], labels, sample_length=PIECE_SAMPLES, seed=5)
    with torch.no_grad():
        want = model.decode_level(tokens, 2)[0].T.numpy()
    np.testing.assert_allclose(_joined(final), want, atol=1e-5)
    assert upsampled[-1].frames == PIECE_SAMPLES


def test_a_drawn_seed_is_reported_and_replaying_it_gives_the_same_audio(jukebox_daemon: DaemonThread) -> None:
    with Client(jukebox_daemon.zmq) as client:
        drawn = list(client.jukebox_sample(PIECE_S, upsample=False, model="debug/jukebox", **LABELS))
        seed = drawn[1].seed
        assert isinstance(drawn[1], Started) and isinstance(seed, int) and 0 <= seed < DRAWN_SEED_LIMIT
        again = list(client.jukebox_sample(PIECE_S, seed=seed, upsample=False, model="debug/jukebox", **LABELS))
    assert isinstance(drawn[-1], Done) and isinstance(again[-1], Done) and again[1].seed == seed
    np.testing.assert_array_equal(_joined(_stages(drawn)[1]), _joined(_stages(again)[1]))


def test_inline_prime_and_inline_audio_to_upsample_over_zeromq(jukebox_daemon: DaemonThread, reference) -> None:
    model, tokenizer = reference
    rng = np.random.default_rng(1)
    prime = (0.1 * rng.standard_normal((2, 2048))).astype(np.float32)  # stereo at 22.05 kHz: mixed and resampled
    with Client(jukebox_daemon.zmq) as client:
        primed = list(client.jukebox_sample(PIECE_S, seed=9, model="debug/jukebox", job="jb-primed", prime=prime,
                                             sample_rate=22050, **LABELS))
        assert isinstance(primed[-1], Done) and primed[-1].frames == PIECE_SAMPLES, primed[-1]
        final = _joined(_stages(primed)[1])
        # The prime is continued: its codes are the first codes of every level, so the batch
        # API's primed_sample on the same (conformed) prime and seed gives the same audio.
        conformed = conform(Audio(prime, 22050), SAMPLE_RATE, 1).samples
        labels = tokenizer(artist=LABELS["artist"], genres=LABELS["genres"], lyrics=LABELS["lyrics"])["input_ids"]
        tokens = model.primed_sample(torch.from_numpy(conformed.T.copy())[None], labels, sample_length=PIECE_SAMPLES,
                                     seed=9)
        with torch.no_grad():
            np.testing.assert_allclose(final, model.decode_level(tokens, 2)[0].T.numpy(), atol=1e-5)

        upsampled = list(client.jukebox_upsample(final, sample_rate=SAMPLE_RATE, seed=2, model="debug/jukebox",
                                                  job="jb-up-inline", **LABELS))
    assert isinstance(upsampled[-1], Done) and upsampled[-1].frames == PIECE_SAMPLES, upsampled[-1]
    preview, _ = _stages(upsampled)
    top = model.prime_tokens(torch.from_numpy(final.T.copy())[None])
    with torch.no_grad():
        np.testing.assert_allclose(_joined(preview), model.decode_level(top, 0)[0].T.numpy(), atol=1e-5)


def test_a_musicgen_request_sent_while_a_jukebox_job_waits_runs_first(jukebox_daemon: DaemonThread) -> None:
    with Client(jukebox_daemon.zmq) as client, Monitor(jukebox_daemon.pub) as monitor:
        monitor.sync(client)
        blocker = client.jukebox_sample(4 * PIECE_S, seed=1, model="debug/jukebox", job="jb-block")
        blocker_events = iter(blocker)
        assert isinstance(next(blocker_events), Accepted)
        assert isinstance(next(blocker_events), Started)
        waiting = client.jukebox_sample(PIECE_S, seed=2, model="debug/jukebox", job="jb-wait")
        assert isinstance(next(iter(waiting)), Accepted)
        live = client.generate("live pad", 0.5, model="debug/musicgen", job="mg-live")
        accepted = next(iter(live))
        assert isinstance(accepted, Accepted) and accepted.queue_position == 0  # ahead of the Jukebox job
        client.cancel("jb-block")
        assert isinstance(list(live)[-1], Done)
        # collect() joins the final stage (the preview, sent first, is not part of the job's audio).
        rendered = waiting.collect()
        assert rendered.audio.shape == (1, PIECE_SAMPLES) and rendered.sample_rate == SAMPLE_RATE
        started = monitor.events_until(lambda e: isinstance(e, Done) and e.job == "jb-wait", timeout_s=60)
    order = [e.job for e in started if isinstance(e, Started)]
    assert order.index("mg-live") < order.index("jb-wait"), order
    list(blocker_events)


def test_a_running_render_pauses_for_a_live_musicgen_request_and_resumes_unchanged(
        jukebox_daemon: DaemonThread, reference) -> None:
    model, tokenizer = reference
    with Client(jukebox_daemon.zmq) as client, Monitor(jukebox_daemon.pub) as monitor:
        monitor.sync(client)
        render = iter(client.jukebox_sample(PIECE_S, seed=6, model="debug/jukebox", job="jb-render", **LABELS))
        seen = []
        for event in render:
            seen.append(event)
            if isinstance(event, Progress):
                break  # the render is running (its first window is done)
        live = client.generate("live pad", 0.5, model="debug/musicgen", job="mg-during").collect()
        seen += list(render)
        everything = monitor.events_until(lambda e: isinstance(e, Done) and e.job == "jb-render", timeout_s=60)
    assert isinstance(seen[-1], Done) and live.audio.shape[1] > 0
    # The MusicGen job started and finished while the render was still running, which then went on.
    order = [(type(e).__name__, e.job) for e in everything if isinstance(e, (Started, Done, Progress))]
    live_done = order.index(("Done", "mg-during"))
    assert ("Progress", "jb-render") in order[live_done:]
    assert order.index(("Started", "mg-during")) < order.index(("Done", "jb-render"))
    # Paused between two tokens and resumed: the render is still exactly the batch API's.
    labels = tokenizer(artist=LABELS["artist"], genres=LABELS["genres"], lyrics=LABELS["lyrics"])["input_ids"]
    tokens = model.ancestral_sample(labels, sample_length=PIECE_SAMPLES, seed=6)
    with torch.no_grad():
        np.testing.assert_allclose(_joined(_stages(seen)[1]), model.decode_level(tokens, 2)[0].T.numpy(), atol=1e-5)


@pytest.mark.parametrize("stage", ["top level", "upsampling"])
def test_cancel_ends_the_job_at_once_while_sampling_or_upsampling(jukebox_daemon: DaemonThread, stage: str) -> None:
    """A window of either level is many tokens; the job stops at the next token, not the window's end."""
    job = f"jb-cancel-{stage.replace(' ', '-')}"
    with Client(jukebox_daemon.zmq) as client, Client(jukebox_daemon.zmq) as control:
        # The top level of 8 windows outlasts the cancel; upsampling 2 windows does too.
        pieces = 8 if stage == "top level" else 2
        events = iter(client.jukebox_sample(pieces * PIECE_S, seed=4, model="debug/jukebox", job=job))
        seen = []
        for event in events:
            seen.append(event)
            if stage == "top level" and isinstance(event, Progress):
                break  # the top level's first window is done; the next is being sampled
            if stage == "upsampling" and isinstance(event, Chunk) and event.stage == "final":
                break  # the preview is out and the bottom level is streaming
        cancelled_at = time.monotonic()
        control.cancel(job)
        rest = list(events)
        elapsed_s = time.monotonic() - cancelled_at
    assert isinstance(rest[-1], Error) and rest[-1].code == "cancelled", rest[-1]
    assert not any(isinstance(e, Done) for e in rest)
    chunks = [e for e in seen + rest if isinstance(e, Chunk)]
    if stage == "top level":
        assert not chunks  # cancelled before the top level was complete: no preview yet
    else:
        assert chunks[0].stage == "preview"
        assert sum(c.frames for c in chunks if c.stage == "final") < pieces * PIECE_SAMPLES
    assert elapsed_s < 2.0


@pytest.mark.parametrize(("request_fields", "words"), [
    (dict(artist="Nobody We Know"), "unknown artist"),
    (dict(genres="polka-step"), "unknown genre"),
    (dict(model="debug/musicgen"), "needs a Jukebox model"),
])
def test_labels_the_model_does_not_know_end_the_job_with_an_error_event(
        jukebox_daemon: DaemonThread, request_fields: dict, words: str) -> None:
    fields = dict(model="debug/jukebox", seed=1)
    fields.update(request_fields)
    with Client(jukebox_daemon.zmq) as client:
        events = list(client.jukebox_sample(PIECE_S, **fields))
        assert isinstance(events[0], Accepted) and isinstance(events[-1], Error), events
        code = "unsupported" if "model" in request_fields else "invalid_argument"
        assert events[-1].code == code and words in events[-1].message, events[-1]
        assert client.status().running == 0


@pytest.mark.parametrize(("header", "code"), [
    ({"duration_s": -1.0}, "invalid_argument"),
    ({"duration_s": 0.1, "lyrics": "la " * 3000}, "prompt_too_long"),
    ({"duration_s": 1e6}, "duration_too_long"),
    ({"duration_s": 0.1, "top_p": 2.0}, "invalid_argument"),
    ({"duration_s": 0.1, "lyric_timing": True, "lyrics": " "}, "invalid_argument"),  # no lyrics to time
    ({"duration_s": 0.1, "prime": "relative/prime.wav"}, "path_not_allowed"),
    ({"type": "jukebox_upsample", "source": "no-such-job"}, "not_found"),
])
def test_bad_jukebox_requests_are_refused_at_the_boundary(jukebox_daemon: DaemonThread, header: dict,
                                                          code: str) -> None:
    import json

    import zmq

    from protocol import wire

    message = {"v": 1, "type": "jukebox_sample", "id": "bad", "model": "debug/jukebox", **header}
    context = zmq.Context()
    sock = context.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 10000)
    sock.connect(jukebox_daemon.zmq)
    try:
        sock.send_multipart([json.dumps(message).encode()])
        reply = wire.decode_event(sock.recv_multipart())
        assert isinstance(reply, Error) and reply.code == code and reply.re == "bad", reply
        # The daemon serves on: the next request is answered.
        sock.send_multipart(wire.encode(JukeboxSample(duration_s=PIECE_S, model="debug/jukebox", upsample=False,
                                                      seed=1, id="next", chunks=False)))
        kinds = []
        while not kinds or kinds[-1] not in ("done", "error"):
            kinds.append(wire.decode_event(sock.recv_multipart()).TYPE)
        assert kinds[0] == "accepted" and kinds[-1] == "done", kinds
    finally:
        sock.close()
        context.term()


# --------------------------------------------------------------------------------------------
# OSC: liblo's oscsend asks, oscdump listens; chunks are WAV files named after their stage.

needs_liblo = pytest.mark.skipif(shutil.which("oscsend") is None or shutil.which("oscdump") is None,
                                 reason="liblo-tools (oscsend, oscdump) not installed")


def _osc_job(dump: OscDump, job: str) -> list:
    end = dump.wait_for(lambda line: line.address in ("/riffd/done", "/riffd/error") and line.args[0] == job,
                        timeout_s=60)
    assert end is not None and end.address == "/riffd/done", dump.messages()
    return [line for line in dump.messages() if line.args and line.args[0] == job]


def _read_wavs(lines: list) -> np.ndarray:
    blocks = []
    for line in lines:
        data, rate = sf.read(line.args[2], dtype="float32", always_2d=True)
        assert rate == SAMPLE_RATE
        blocks.append(data[:, 0])
    return np.concatenate(blocks)


@needs_liblo
def test_osc_sample_sends_preview_files_then_final_ones_and_upsample_takes_its_job_id(
        jukebox_daemon: DaemonThread) -> None:
    url = f"osc.udp://127.0.0.1:{jukebox_daemon.osc_port}"
    with OscDump() as dump:
        oscsend("/riffd/subscribe", "i", dump.port, url=url)
        oscsend("/riffd/jukebox/sample", "fsssssissss", PIECE_S, "artist", LABELS["artist"], "genres",
                LABELS["genres"], "seed", 11, "job", "jb-osc", "model", "debug/jukebox", url=url)
        lines = _osc_job(dump, "jb-osc")
        kinds = [line.address.rsplit("/", 1)[1] for line in lines]
        assert kinds[:2] == ["accepted", "started"] and kinds[-1] == "done" and "progress" in kinds, kinds
        chunks = [line for line in lines if line.address == "/riffd/chunk"]
        assert all(line.types == "sisiis" for line in chunks)
        stages = ["preview" if "/preview-" in line.args[2] else "final" for line in chunks]
        assert [line.args[5] for line in chunks] == stages  # the stage travels too
        assert lines[1].args[4] == 11  # the seed, after the fields started always had
        n_preview = stages.count("preview")
        # The preview files all come first; each stage counts its chunks from 0.
        assert 1 < n_preview < len(stages) and stages == ["preview"] * n_preview + ["final"] * (len(stages) - n_preview)
        assert [line.args[1] for line in chunks] == [*range(n_preview), *range(len(stages) - n_preview)]
        preview, final = _read_wavs(chunks[:n_preview]), _read_wavs(chunks[n_preview:])
        assert preview.shape == final.shape == (PIECE_SAMPLES,)
        saved, rate = sf.read(lines[-1].args[1], dtype="float32")
        assert rate == SAMPLE_RATE
        np.testing.assert_array_equal(saved, final)  # the saved file is the final stage, not the preview
        assert not np.array_equal(preview, final)

        oscsend("/riffd/jukebox/upsample", "ssssssi", "jb-osc", "job", "jb-osc-up", "model", "debug/jukebox",
                "seed", 11, url=url)
        lines = _osc_job(dump, "jb-osc-up")
        chunks = [line for line in lines if line.address == "/riffd/chunk"]
        n_preview = sum("/preview-" in line.args[2] for line in chunks)
        # Its preview decodes the sampled job's top-level codes, so it is that job's preview again.
        np.testing.assert_allclose(_read_wavs(chunks[:n_preview]), preview, atol=1e-6)
        upsampled, _ = sf.read(lines[-1].args[1], dtype="float32")
        np.testing.assert_array_equal(upsampled, _read_wavs(chunks[n_preview:]))
        oscsend("/riffd/unsubscribe", "i", dump.port, url=url)


# --------------------------------------------------------------------------------------------
# Lyric timing (issue 18): words streamed while the top level is sampled, on both transports.

TIMED_LYRICS = "I met a traveller from an antique land who said two vast and trunkless legs of stone"
TIMED_SAMPLES = 256 * 128  # 256 top-level tokens: 9 windows of debug/jukebox


@needs_liblo
def test_lyric_timing_streams_each_word_in_order_as_the_batch_alignment_times_it(
        jukebox_daemon: DaemonThread, reference) -> None:
    from daemon.models.jukebox.alignment import AlignedRows
    from daemon.models.jukebox.lyric_timing import LyricTimer

    url = f"osc.udp://127.0.0.1:{jukebox_daemon.osc_port}"
    labels = dict(LABELS, lyrics=TIMED_LYRICS)
    with OscDump() as dump, Client(jukebox_daemon.zmq) as client:
        oscsend("/riffd/subscribe", "i", dump.port, url=url)
        events = list(client.jukebox_sample(TIMED_SAMPLES / SAMPLE_RATE, seed=4, model="debug/jukebox",
                                            job="jb-lyrics", upsample=False, lyric_timing=True, **labels))
        osc = _osc_job(dump, "jb-lyrics")
        oscsend("/riffd/unsubscribe", "i", dump.port, url=url)
    assert isinstance(events[-1], Done), events[-1]
    duration_s = events[-1].frames / SAMPLE_RATE
    words = [e for e in events if isinstance(e, Lyric)]
    at = [i for i, e in enumerate(events) if isinstance(e, Lyric)]
    assert len(words) > 3 and [w.index for w in words] == sorted({w.index for w in words})
    # Streamed while the top level is sampled: progress comes between them, the audio after them.
    assert any(isinstance(e, Progress) for e in events[at[0]:at[-1]])
    assert at[-1] < min(i for i, e in enumerate(events) if isinstance(e, Chunk))
    for word, after in zip(words, words[1:] + [None]):
        assert word.text == TIMED_LYRICS.split()[word.index] and word.job == "jb-lyrics"
        assert 0.0 <= word.start_s <= word.end_s <= duration_s
        assert after is None or word.end_s <= after.start_s
    # The same words over OSC (float32 seconds).
    lines = [line for line in osc if line.address == "/riffd/lyric"]
    assert [line.types for line in lines] == ["sisff"] * len(words)
    assert [(line.args[1], line.args[2]) for line in lines] == [(w.index, w.text) for w in words]
    np.testing.assert_allclose([line.args[3:] for line in lines], [(w.start_s, w.end_s) for w in words], atol=1e-5)

    # What the batch API's alignment of the same tokens gives, timed by hand from the whole matrix.
    model, tokenizer = reference
    ids = tokenizer(**labels)["input_ids"]
    tokens = model.ancestral_sample(ids, sample_levels=[0], sample_length=TIMED_SAMPLES, seed=4,
                                    compute_alignments=True)
    alignment = tokens.alignments[0]
    timer = LyricTimer(tokenizer.lyric_text(TIMED_LYRICS), alignment.shape[0])
    whole = AlignedRows(0, alignment.shape[0], np.arange(alignment.shape[1]), alignment[None])
    want = timer.rows(whole) + timer.finish()
    row_s = 128 / SAMPLE_RATE
    assert [(w.index, w.text) for w in words] == [(t.index, t.text) for t in want]
    np.testing.assert_allclose([(w.start_s, w.end_s) for w in words],
                               [(t.start_row * row_s, t.end_row * row_s) for t in want], rtol=0, atol=1e-9)

