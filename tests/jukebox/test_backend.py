"""The daemon's Jukebox backend on the debug/jukebox preset: stages, cancel, prime, labels, codes, registry."""

from __future__ import annotations

import fnmatch
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from daemon.audio.types import Audio
from daemon.models import registry
from daemon.models.jukebox.backend import FINAL, PREVIEW, JukeboxBackend, JukeboxControls
from daemon.models.jukebox.codes_file import TopCodes, read_codes, write_codes
from protocol.errors import BadAudio, Cancelled, InvalidArgument, OutputError, Unsupported
from protocol.params import GenerationParams

PIECE = 16384  # samples: one top-level window (128 tokens) of debug/jukebox
CONTROLS = JukeboxControls(artist="zac brown band", genres="country", lyrics="hello", seed=5)


@pytest.fixture(scope="module")
def backend(riffd_cache: Path) -> JukeboxBackend:
    backend = registry.load_backend("debug/jukebox", device="cpu", cache_dir=riffd_cache)
    assert isinstance(backend, JukeboxBackend)
    return backend


class StopAfter:
    """should_stop that turns True on its `n`-th call (the sampler asks before every token)."""

    def __init__(self, n: int) -> None:
        self.n, self.calls = n, 0

    def __call__(self) -> bool:
        self.calls += 1
        return self.calls >= self.n


def test_cancel_lands_within_the_first_window(backend: JukeboxBackend) -> None:
    stop = StopAfter(40)  # the first top-level window samples 128 tokens
    chunks = []
    with pytest.raises(Cancelled):
        for chunk in backend.sample(CONTROLS, PIECE / 44100, should_stop=stop):
            chunks.append(chunk)
    assert stop.calls == 40 and chunks == []


def test_cancel_while_upsampling_keeps_what_was_streamed(backend: JukeboxBackend) -> None:
    stages: list[str] = []
    stop_now = False
    with pytest.raises(Cancelled):
        # The lambda reads stop_now as the loop updates it: that late binding is the point.
        for chunk in backend.sample(CONTROLS, PIECE / 44100, should_stop=lambda: stop_now):  # noqa: B023
            stages.append(chunk.stage)
            stop_now = stages.count(FINAL) == 3
    assert stages[0] == PREVIEW and stages.count(FINAL) == 3 and stages[-1] == FINAL


def test_primed_sample_continues_the_prime_as_the_batch_api_does(backend: JukeboxBackend) -> None:
    model = backend.model
    rng = np.random.default_rng(0)
    prime = (0.1 * rng.standard_normal((1, 4096))).astype(np.float32)
    chunks = list(backend.sample(CONTROLS, PIECE / 44100, prime=Audio(prime, 44100)))
    final = np.concatenate([c.audio for c in chunks if c.stage == FINAL], axis=1)
    labels = backend.labels(CONTROLS)
    tokens = model.primed_sample(torch.from_numpy(prime.T.copy())[None], labels, sample_length=PIECE, seed=5)
    with torch.no_grad():
        want = model.decode_level(tokens, 2)[0].T.numpy()
    np.testing.assert_allclose(final, want, atol=1e-5)
    # Stereo at another rate is mixed and resampled to what the VQ-VAE takes, not refused.
    stereo = Audio(np.repeat(prime, 2, axis=0)[:, :2000], 22050)
    assert backend._prime_tokens(stereo, PIECE)[0].shape == (1, 4000 // 128)


def test_a_prime_as_long_as_the_piece_is_refused(backend: JukeboxBackend) -> None:
    with pytest.raises(InvalidArgument, match="shorter than the piece"):
        next(backend.sample(CONTROLS, PIECE / 44100, prime=Audio(np.zeros((1, PIECE), np.float32), 44100)))


def test_without_a_seed_one_is_drawn_and_torch_global_rng_is_untouched(backend: JukeboxBackend) -> None:
    controls = JukeboxControls(artist="zac brown band", genres="country")
    state = torch.random.get_rng_state()
    first = np.concatenate([c.audio for c in backend.sample(controls, 4096 / 44100, upsample=False)], axis=1)
    second = np.concatenate([c.audio for c in backend.sample(controls, 4096 / 44100, upsample=False)], axis=1)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert not np.array_equal(first, second)


@pytest.mark.parametrize(("controls", "match"), [
    (JukeboxControls(artist="zac brwn band"), r"unknown artist .*did you mean 'zac brown band'"),
    (JukeboxControls(genres="polka"), "unknown genre"),
])
def test_labels_the_model_does_not_know_are_refused(backend: JukeboxBackend, controls, match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        backend.labels(controls)


def test_empty_labels_are_the_unknown_artist_and_genre(backend: JukeboxBackend) -> None:
    labels = backend.labels(JukeboxControls())
    assert [row[0, 3].item() for row in labels] == [0, 0, 0]


def test_upsample_from_audio_uses_its_top_level_codes(backend: JukeboxBackend) -> None:
    audio = Audio((0.2 * np.sin(np.arange(PIECE) / 7.0)).astype(np.float32)[None], 44100)
    top = backend.top_codes(audio)
    want = backend.model.prime_tokens(torch.from_numpy(audio.samples.T.copy())[None])[0][0].numpy()
    np.testing.assert_array_equal(top, want)
    chunks = list(backend.upsample(CONTROLS, top))
    assert chunks[0].stage == PREVIEW and chunks[-1].stage == FINAL
    assert sum(c.frames for c in chunks if c.stage == FINAL) == PIECE
    with pytest.raises(InvalidArgument, match="top-level codes"):
        next(backend.upsample(CONTROLS, np.array([0, 64])))


def test_codes_files_round_trip_and_bad_ones_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "job.codes.npz"
    write_codes(path, TopCodes(np.arange(10), artist="a", genres="g", lyrics="l", model="debug/jukebox"))
    back = read_codes(path)
    assert back.codes.tolist() == list(range(10))
    assert (back.artist, back.genres, back.lyrics, back.model) == ("a", "g", "l", "debug/jukebox")
    np.save(tmp_path / "top.npy", np.arange(5)[None])
    assert read_codes(tmp_path / "top.npy").codes.tolist() == list(range(5))
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(BadAudio):
        read_codes(tmp_path / "junk.npz")
    np.save(tmp_path / "floats.npy", np.zeros(3))
    with pytest.raises(InvalidArgument):
        read_codes(tmp_path / "floats.npy")


def test_musicgen_requests_are_refused_by_a_jukebox_model(backend: JukeboxBackend) -> None:
    from daemon.backend import JobContext
    from daemon.jobs import Job
    from protocol.messages import Generate

    job = Job(id="j", request=Generate(prompt="a prompt", duration_s=1.0), model=backend.model_id,
              params=GenerationParams(duration_s=1.0))
    context = JobContext(seed=1, read_audio=lambda source: None, resolve_input=Path, progress=lambda done, total: None,
                         should_stop=lambda: False, yield_to_higher=lambda: None)
    with pytest.raises(Unsupported, match="jukebox_sample"):
        backend.run_job(job, context)


def test_registry_knows_jukebox_presets_folders_and_hub_ids(riffd_cache: Path, tmp_path: Path) -> None:
    from daemon.models.jukebox import presets

    assert registry.JUKEBOX_PRESETS == presets.PRESETS and "debug/jukebox" in registry.known_presets()
    folder = tmp_path / "my-finetune"  # a folder named like nothing: its config.json decides
    shutil.copytree(registry.resolve_folder("debug/jukebox", cache_dir=riffd_cache), folder)
    assert registry.is_jukebox(str(folder)) and not registry.is_jukebox("facebook/musicgen-small")
    assert isinstance(registry.load_backend(str(folder), device="cpu"), JukeboxBackend)
    patterns = registry.hub_patterns("openai/jukebox-1b-lyrics")
    assert patterns == registry.hub_patterns("openai/jukebox-5b-lyrics")
    # What OpenAI's Jukebox repositories hold, and what riffd reads of them.
    needed = ["config.json", "pytorch_model-00001-of-00003.bin", "pytorch_model.bin.index.json",
              "model.safetensors", "model-00001-of-00002.safetensors", "model.safetensors.index.json",
              "tokenizer_config.json", "artists.json", "genres.json", "lyrics.json", "vocab/artists.json"]
    for name in needed:
        assert any(fnmatch.fnmatch(name, pattern) for pattern in patterns), name
    assert not any(fnmatch.fnmatch("flax_model.msgpack", pattern) for pattern in patterns)


def test_a_hub_id_loads_from_the_local_hugging_face_cache_offline(riffd_cache: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """`openai/jukebox-1b-lyrics` as `riffd pull` leaves it: a snapshot in the hub cache (here the
    debug preset's files under that id), loaded with downloads off."""
    from huggingface_hub import constants

    repo = tmp_path / "models--openai--jukebox-1b-lyrics"
    revision = "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(registry.resolve_folder("debug/jukebox", cache_dir=riffd_cache), repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    backend = registry.load_backend("openai/jukebox-1b-lyrics", device="cpu")
    assert isinstance(backend, JukeboxBackend) and backend.model_id == "openai/jukebox-1b-lyrics"
    assert sum(c.frames for c in backend.sample(CONTROLS, 1024 / 44100, upsample=False)) == 1024


def test_riffd_pull_fetches_what_a_jukebox_checkpoint_needs(monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture) -> None:
    import argparse

    from clients.cli import pull
    from daemon.models import hub

    asked = {}

    def download(model_id: str, patterns) -> Path:
        asked[model_id] = tuple(patterns)
        return Path("/cache") / model_id

    monkeypatch.setattr(hub, "download", download)
    assert pull.run(argparse.Namespace(model="openai/jukebox-5b-lyrics")) == 0
    assert asked == {"openai/jukebox-5b-lyrics": registry.JUKEBOX_HUB_PATTERNS}
    assert pull.run(argparse.Namespace(model="debug/jukebox")) == 0 and len(asked) == 1  # a preset: nothing to fetch


def test_codes_that_cannot_be_written_are_an_output_error(backend: JukeboxBackend, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    with pytest.raises(OutputError, match="cannot write"):
        list(backend.sample(CONTROLS, 1024 / 44100, upsample=False, codes_path=tmp_path / "a-file" / "x.codes.npz"))


def test_musicgen_only_engine_formats_leave_jukebox_priors_in_float32(riffd_cache: Path) -> None:
    """`riffd serve --engine int8` with a Jukebox beside MusicGen: the Jukebox still loads, exact."""
    backend = registry.load_backend("debug/jukebox", device="cpu", cache_dir=riffd_cache, engine="int8")
    assert backend.model.priors[0].prior.embed_tokens.weight.dtype == torch.float32
    half = registry.load_backend("debug/jukebox", device="cpu", cache_dir=riffd_cache, engine="bfloat16")
    assert half.model.priors[0].prior.embed_tokens.weight.dtype == torch.bfloat16
    assert half.model.vqvae.decoders[0].out.weight.dtype == torch.float32  # codes and audio stay exact
