"""Jukebox as a resident daemon backend: labels checked, a prime or codes in, audio streamed out.

A job streams in two stages (`AudioChunk.stage`):
  "preview"  the top-level codes decoded straight to audio, as soon as the top level is
             sampled (or at once, when upsampling given codes), one chunk per top-level hop;
  "final"    the upsampled audio, one chunk as each bottom-level window completes, each chunk
             final (`StreamingDecoder`), so the chunks joined are the whole piece.
A top-level-only sketch (`upsample=False`) has just the "final" stage: its top-level decode.
Sampling is cancellable before every token (`should_stop`), so within windows too.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from daemon.audio.resample import conform
from daemon.audio.types import Audio, AudioChunk
from daemon.seeds import draw_seed
from daemon.backend import Checkpoint, JobContext, ProgressFn, StopFn
from daemon.jobs import Job
from protocol.errors import Cancelled, DurationTooLong, InvalidArgument, OutputError

from .alignment import AlignedRows, alignment_layer_head
from .codes_file import TopCodes, write_codes
from .jobs import run_jukebox_job
from .lyric_timing import LyricTimer, WordTiming
from .model import JukeboxModel
from .sampler import LevelSampled, SamplingCancelled, WindowSampled
from .streaming import StreamingDecoder
from .tokenizer import JukeboxTokenizer

log = logging.getLogger(__name__)

PREVIEW = "preview"
FINAL = "final"
#: Called with (word index, text, start_s, end_s) as each word's timing becomes known.
WordFn = Callable[[int, str, float, float], None]
#: Longest word text sent (an OSC message must stay small).
MAX_WORD_CHARS = 200


@dataclass(frozen=True)
class JukeboxControls:
    """What a Jukebox request asks for, validated by the protocol (ranges) and here (vocabulary)."""

    artist: str = ""
    genres: str = ""
    lyrics: str = ""
    seed: int | None = None  # None: the backend draws one (never torch's global generator)
    temperature: float = 0.98  # levels above the bottom (the bottom's is Jukebox's fixed 0.99)
    top_k: int = 0
    top_p: float = 0.0


class JukeboxBackend:
    """A loaded Jukebox (VQ-VAE, priors, tokenizer) serving jukebox_sample and jukebox_upsample."""

    supports_melody = False

    def __init__(self, model: JukeboxModel, tokenizer: JukeboxTokenizer, model_id: str, *,
                 max_duration_s: float = float("inf")) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.model_id = model_id
        self.max_duration_s = max_duration_s
        self.sample_rate = model.config.sampling_rate
        self.audio_channels = model.vqvae.config.conv_input_shape
        self._top_hop = model.priors[0].raw_to_tokens  # samples per top-level token
        self._n_levels = len(model.priors)
        top = model.config.priors[0]
        # A preview chunk per top-level window hop: the granularity the top level is made at.
        self.preview_chunk_frames = max(1, int(top.n_ctx * model.config.hop_fraction[0])) * self._top_hop
        self._device = model.priors[0].prior.embed_tokens.weight.device

    # -- The daemon's entry point ---------------------------------------------------------

    def run_job(self, job: Job, context: JobContext) -> Iterator[AudioChunk]:
        """The daemon's entry point: a jukebox_sample or jukebox_upsample job's chunks."""
        return run_jukebox_job(self, job, context)

    def concurrent_jobs(self, job: Job) -> int:
        return 1  # a render holds the device; live requests get in through yield_to_higher

    def batched_jobs(self) -> tuple[str, ...]:
        return ()

    # -- Jukebox jobs ---------------------------------------------------------------------

    def sample(self, controls: JukeboxControls, duration_s: float, *, prime: Audio | None = None,
               upsample: bool = True, codes_path: Path | None = None,
               keep_codes: Callable[[TopCodes], None] | None = None, progress: ProgressFn | None = None,
               should_stop: StopFn | None = None, checkpoint: Checkpoint | None = None,
               words: WordFn | None = None) -> Iterator[AudioChunk]:
        """Sample a piece of `duration_s` (continuing `prime`), preview first, then upsampled.

        `codes_path`: where to keep the top-level codes (written as soon as they exist, so a
        render cancelled while upsampling still leaves its sketch to upsample later).
        `keep_codes`: called with them at the same moment (a cluster worker sends them to the front).
        `checkpoint`: saved after every window; a render that finds one resumes from it.
        `words`: lyric timing wanted; called for each word as the top level is sampled.
        """
        labels = self.labels(controls)
        sample_length = self._sample_length(duration_s)
        timer = None if words is None else self._lyric_timer(controls, sample_length)
        tokens = self._empty_tokens()
        if prime is not None:
            tokens = self._prime_tokens(prime, sample_length)
        levels = range(self._n_levels) if upsample else range(1)

        def top_done(top: torch.Tensor) -> Iterator[AudioChunk]:
            codes = TopCodes(top[0].cpu().numpy(), controls.artist, controls.genres, controls.lyrics, self.model_id)
            if keep_codes is not None:
                keep_codes(codes)
            if codes_path is not None:
                try:
                    write_codes(codes_path, codes)
                except OSError as exc:
                    raise OutputError(f"cannot write {codes_path}: {exc.strerror or exc}") from exc
            return self._decoded_top(top, PREVIEW if upsample else FINAL)

        yield from self._run(tokens, labels, levels, sample_length, controls, top_done, progress, should_stop,
                             checkpoint, None if timer is None or words is None else (timer, words))

    def upsample(self, controls: JukeboxControls, top_codes: np.ndarray, *, progress: ProgressFn | None = None,
                 should_stop: StopFn | None = None, checkpoint: Checkpoint | None = None) -> Iterator[AudioChunk]:
        """Upsample top-level codes `[T]`: their preview at once, then the levels below the top."""
        top = torch.as_tensor(np.asarray(top_codes), dtype=torch.long, device=self._device).reshape(1, -1)
        vocab = self.model.priors[0].music_vocab_size
        if top.numel() == 0 or top.min() < 0 or top.max() >= vocab:
            raise InvalidArgument(f"top-level codes must be integers in [0, {vocab}) for {self.model_id}")
        sample_length = top.shape[1] * self._top_hop
        self._check_duration(sample_length / self.sample_rate)
        labels = self.labels(controls)
        yield from self._decoded_top(top, PREVIEW)
        tokens = [top, *self._empty_tokens()[1:]]
        yield from self._run(tokens, labels, range(1, self._n_levels), sample_length, controls, None,
                             progress, should_stop, checkpoint)

    def top_codes(self, audio: Audio) -> np.ndarray:
        """The top-level codes `[T]` of audio (resampled and mixed to the model's format)."""
        samples = self._model_audio(audio)
        if samples.shape[1] < self._top_hop:
            raise InvalidArgument(f"audio to upsample needs at least {self._top_hop} samples at {self.sample_rate} Hz")
        with torch.no_grad():
            return self.model.prime_tokens(samples)[0][0].cpu().numpy()

    def labels(self, controls: JukeboxControls) -> list[torch.Tensor]:
        """Tokenizer ids per prior; InvalidArgument for an artist or genre the model does not know."""
        artist = controls.artist.strip() or "unknown"
        genres = controls.genres.strip() or "unknown"
        for version in dict.fromkeys(self.tokenizer.version):
            if self.tokenizer.artist_id(artist, version) == 0 and artist.lower() != "unknown":
                hint = self._suggest(artist, "artists")
                raise InvalidArgument(f"unknown artist {artist!r} for {self.model_id}{hint}")
            try:
                genre_ids = self.tokenizer.genre_ids(genres, version)
            except ValueError as exc:
                raise InvalidArgument(f"genres {genres!r}: {exc}") from None
            if 0 in genre_ids and genres.lower() != "unknown":
                raise InvalidArgument(f"unknown genre {genres!r} for {self.model_id}{self._suggest(genres, 'genres')}")
        return self.tokenizer(artist=artist, genres=genres, lyrics=controls.lyrics)["input_ids"]

    # -- the stream -----------------------------------------------------------------------

    def _run(self, tokens: list[torch.Tensor], labels: list[torch.Tensor], levels: Sequence[int], sample_length: int,
             controls: JukeboxControls, top_done, progress: ProgressFn | None,
             should_stop: StopFn | None, checkpoint: Checkpoint | None = None,
             lyric_timing: tuple[LyricTimer, WordFn] | None = None) -> Iterator[AudioChunk]:
        """Sample `levels` in one call (one seeded generator: the tokens of the batch API), streaming
        the top level's decode when it is done and the bottom level window by window (and the words'
        timing as the top level's alignment rows come).

        With a `checkpoint`, the tokens of every level and the generator's state are saved after
        each window; a checkpoint found at the start (a killed render) is resumed: its windows are
        not sampled again, the generator goes on from its state, and the bottom level's audio is
        decoded again in the same pushes, so the render equals an uninterrupted one. A resumed
        render's lyric timing is sent again from the start (the alignment of the tokens it has).
        """
        seed = controls.seed if controls.seed is not None else draw_seed()
        if controls.seed is None:
            log.info("%s: drew seed %d", self.model_id, seed)
        kwargs: dict[str, object] = dict(sample_length=sample_length, seed=seed, top_k=controls.top_k,
                                         top_p=controls.top_p, sampling_temperature=controls.temperature,
                                         compute_alignments=lyric_timing is not None)
        bottom = self._n_levels - 1
        decoder = StreamingDecoder(self.model.vqvae, vqvae_level=0)
        index, offset = 0, 0
        resumed = _restored(checkpoint.load() if checkpoint is not None else None, seed, sample_length, tokens)
        rng_state, pushes = None, []  # pushes: bottom-level token counts decoded so far (streaming)
        done_before = 0  # tokens the checkpoint holds: progress goes on from there, not from zero
        if resumed is not None:
            tokens, rng_state, replay, done_before = resumed
            log.info("%s: resuming a render from its checkpoint (%s tokens per level)", self.model_id,
                     "/".join(str(t.shape[1]) for t in tokens))
        else:
            replay = []
        if progress is not None and done_before:
            report = progress
            progress = lambda done, total: report(done + done_before, total + done_before)  # noqa: E731
        events = self.model.sample_windows(tokens, labels, sample_levels=list(levels), should_stop=should_stop,
                                           progress=progress, rng_state=rng_state, **kwargs)
        started = False
        try:
            for event in events:
                if isinstance(event, AlignedRows):
                    # lyric timing (the rows of a prime's or resumed top-level tokens come first)
                    if lyric_timing is not None:
                        self._send_words(lyric_timing[0].rows(event), lyric_timing[1])
                    continue
                started, audio = True, None
                if replay and not (isinstance(event, LevelSampled) and event.level == 0):
                    # The audio the killed render had streamed, decoded again in its pushes.
                    for end in replay:
                        pushed = _decode(decoder.push, tokens[bottom][:, :end])
                        pushes.append(end)
                        if pushed.shape[1]:
                            yield AudioChunk(index, offset, pushed, self.sample_rate, stage=FINAL)
                            index, offset = index + 1, offset + pushed.shape[1]
                    replay = []
                if isinstance(event, LevelSampled) and event.level == 0 and top_done is not None:
                    if lyric_timing is not None:
                        self._send_words(lyric_timing[0].finish(), lyric_timing[1])
                    yield from top_done(event.music_tokens[0])
                elif isinstance(event, WindowSampled) and event.level == bottom:
                    audio = _decode(decoder.push, event.music_tokens[bottom])
                    pushes.append(event.music_tokens[bottom].shape[1])
                elif isinstance(event, LevelSampled) and event.level == bottom:
                    audio = _decode(decoder.finish, event.music_tokens[bottom])
                if isinstance(event, WindowSampled) and checkpoint is not None:
                    checkpoint.save(_checkpoint_arrays(event, seed, sample_length, pushes),
                                    done_before + event.done_tokens, done_before + event.total_tokens)
                if audio is not None and audio.shape[1]:
                    yield AudioChunk(index, offset, audio, self.sample_rate, stage=FINAL)
                    index, offset = index + 1, offset + audio.shape[1]
        except SamplingCancelled:
            raise Cancelled(f"Jukebox sampling on {self.model_id} was cancelled") from None
        except ValueError as exc:
            if started:
                raise
            # the sampler's checks of lengths, codes and labels, made before its first token
            raise InvalidArgument(str(exc)) from None

    def _decoded_top(self, top: torch.Tensor, stage: str) -> Iterator[AudioChunk]:
        """Top-level codes [1, T] decoded piece by piece (`StreamingDecoder`: the pieces joined are
        the whole decode), so the first preview chunk comes early and memory stays bounded: a
        minute decoded from the top level at once is gigabytes of activations at full scale."""
        decoder = StreamingDecoder(self.model.vqvae, vqvae_level=self._n_levels - 1)
        step_tokens = self.preview_chunk_frames // self._top_hop
        index, offset, total = 0, 0, top.shape[1]
        for end in range(step_tokens, total + step_tokens, step_tokens):
            audio = _decode(decoder.push, top[:, :end]) if end < total else _decode(decoder.finish, top)
            if audio.shape[1]:
                yield AudioChunk(index, offset, audio, self.sample_rate, stage=stage)
                index, offset = index + 1, offset + audio.shape[1]

    def _lyric_timer(self, controls: JukeboxControls, sample_length: int) -> LyricTimer:
        """A timer for the words of the lyrics; InvalidArgument when this model cannot align them."""
        try:
            alignment_layer_head(self.model.priors[0])
        except ValueError as exc:
            raise InvalidArgument(f"lyric_timing on {self.model_id}: {exc}") from None
        text = self.tokenizer.lyric_text(controls.lyrics)
        if not text.strip():
            raise InvalidArgument(f"lyric_timing: the lyrics have no characters {self.model_id} reads")
        return LyricTimer(text, sample_length // self._top_hop)

    def _send_words(self, timings: list[WordTiming], words: WordFn) -> None:
        seconds_per_row = self._top_hop / self.sample_rate
        for word in timings:
            words(word.index, word.text[:MAX_WORD_CHARS], word.start_row * seconds_per_row, word.end_row * seconds_per_row)

    # -- inputs ---------------------------------------------------------------------------

    def _sample_length(self, duration_s: float) -> int:
        """Samples of a `duration_s` piece, whole top-level tokens; InvalidArgument outside the model's range."""
        self._check_duration(duration_s)
        # Rounded to the nearest sample first: OSC carries float32, 0.3715 s must stay 16384 samples.
        sample_length = round(duration_s * self.sample_rate) // self._top_hop * self._top_hop
        if sample_length < self._top_hop:
            raise InvalidArgument(f"duration_s {duration_s} is shorter than one top-level token of {self.model_id} "
                                  f"({self._top_hop / self.sample_rate:.4f} s)")
        top = self.model.config.priors[0]
        if top.metadata_conditioning and not top.min_duration <= sample_length / self.sample_rate < top.max_duration:
            raise InvalidArgument(f"duration_s {duration_s} is outside {self.model_id}'s trained range "
                                  f"[{top.min_duration:g}, {top.max_duration:g}) s")
        return sample_length

    def _check_duration(self, duration_s: float) -> None:
        if duration_s > self.max_duration_s:
            raise DurationTooLong(f"a {duration_s:.1f} s Jukebox piece is over the daemon's maximum of "
                                  f"{self.max_duration_s:g} s")

    def _prime_tokens(self, prime: Audio, sample_length: int) -> list[torch.Tensor]:
        samples = self._model_audio(prime)
        usable = samples.shape[1] // self._top_hop * self._top_hop
        if usable == 0:
            raise InvalidArgument(f"the prime needs at least {self._top_hop} samples at {self.sample_rate} Hz")
        if usable >= sample_length:
            raise InvalidArgument(f"the prime ({usable / self.sample_rate:.2f} s) must be shorter than the piece "
                                  f"({sample_length / self.sample_rate:.2f} s): duration_s counts the prime too")
        with torch.no_grad():
            return self.model.prime_tokens(samples)

    def _model_audio(self, audio: Audio) -> torch.Tensor:
        """Audio as the VQ-VAE takes it: [1, T, C] float32 at the model's rate and width."""
        conformed = conform(audio, self.sample_rate, self.audio_channels)
        return torch.from_numpy(conformed.samples.T.copy()).unsqueeze(0).to(self._device)

    def _empty_tokens(self) -> list[torch.Tensor]:
        return [torch.zeros(1, 0, dtype=torch.long, device=self._device) for _ in range(self._n_levels)]

    def _suggest(self, name: str, vocabulary: str) -> str:
        encoder = self.tokenizer.artists_encoder if vocabulary == "artists" else self.tokenizer.genres_encoder
        known = [key for key in encoder if not key.endswith(".v2")]
        close = difflib.get_close_matches(name.lower(), known, n=3)
        return f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""


def _checkpoint_arrays(event: WindowSampled, seed: int, sample_length: int, pushes: list[int]) -> dict[str, np.ndarray]:
    """What a render needs to go on after `event`'s window: every level's tokens, the generator."""
    arrays = {f"tokens_{level}": t.cpu().numpy().astype(np.int32) for level, t in enumerate(event.music_tokens)}
    arrays.update(seed=np.array(seed, dtype=np.int64), sample_length=np.array(sample_length, dtype=np.int64),
                  pushes=np.array(pushes, dtype=np.int64))
    if event.rng_state is not None:
        arrays["rng_state"] = event.rng_state.cpu().numpy()
    return arrays


def _restored(saved: dict[str, np.ndarray] | None, seed: int, sample_length: int,
              tokens: list[torch.Tensor]) -> tuple[list[torch.Tensor], torch.Tensor, list[int], int] | None:
    """The tokens, generator state, bottom-level pushes and progress (tokens sampled) of a checkpoint
    of this very render (same seed, length and levels, extending the tokens it starts from); None
    otherwise."""
    if saved is None:
        return None
    try:
        same = (int(saved["seed"]) == seed and int(saved["sample_length"]) == sample_length
                and all(f"tokens_{level}" in saved for level in range(len(tokens))) and "rng_state" in saved)
        restored = [torch.as_tensor(saved[f"tokens_{level}"].astype(np.int64), device=t.device)
                    for level, t in enumerate(tokens)] if same else []
        same = same and all(r.shape[0] == t.shape[0] and r.shape[1] >= t.shape[1] and torch.equal(r[:, :t.shape[1]], t)
                            for r, t in zip(restored, tokens, strict=True))
    except (KeyError, ValueError, TypeError) as exc:
        log.warning("a checkpoint that cannot be used (%s): the render starts over", exc)
        return None
    if not same:
        log.warning("a checkpoint of another render (seed, length or codes differ): the render starts over")
        return None
    rng_state = torch.from_numpy(np.ascontiguousarray(saved["rng_state"], dtype=np.uint8))
    done = int(saved["progress"][0]) if "progress" in saved else 0
    return restored, rng_state, [int(end) for end in saved["pushes"]], done


@torch.no_grad()
def _decode(decode, tokens: torch.Tensor) -> np.ndarray:
    """Run a VQ-VAE decode without autograd; audio [B, T, C] -> float32 [C, T] of the first row."""
    audio = decode(tokens)
    return np.ascontiguousarray(audio[0].T.float().cpu().numpy(), dtype=np.float32)


#: Engine weight formats a Jukebox's priors can take (the VQ-VAE stays float32 regardless).
PRIOR_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def load(folder: Path, model_id: str, *, device: torch.device | str = "cpu", max_duration_s: float = float("inf"),
         weights: str = "float32", compile: bool = False) -> JukeboxBackend:
    """A Jukebox backend from a Hugging Face folder (config, weights and vocabularies).

    `weights`: the priors' dtype (float32 reproduces the reference's tokens); `compile`: sample
    with the fixed-shape step through torch.compile, compiled and warmed up here (for GPUs).
    """
    if weights not in PRIOR_DTYPES:
        raise InvalidArgument(f"Jukebox priors run in {', '.join(PRIOR_DTYPES)}, not {weights!r}")
    model = JukeboxModel.from_pretrained(folder, device=device, dtype=PRIOR_DTYPES[weights],
                                         step="compiled" if compile else "eager")
    tokenizer = JukeboxTokenizer.from_pretrained(folder)
    return JukeboxBackend(model, tokenizer, model_id, max_duration_s=max_duration_s)
