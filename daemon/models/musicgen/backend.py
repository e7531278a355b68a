"""MusicGen's public entry points; every mode funnels into `MusicGen._generate`."""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from daemon.audio.resample import conform
from daemon.audio.types import Audio, AudioChunk
from daemon.backend import JobContext, ProgressFn, StopFn, StreamReport
from daemon.jobs import Job
from daemon.seeds import draw_seed, seeded_rng
from daemon.models.musicgen.ahead import Ahead
from daemon.models.musicgen.batch import Listener, StepBatch
from daemon.models.musicgen.codec import decode_codes, encode_prompt, to_numpy
from daemon.models.musicgen.conditioning import Conditioning, build_conditioning
from daemon.models.musicgen.engine import MusicgenEngine
from daemon.models.musicgen.handoff import Handoff, NextWindow, hands_off, seam_shift
from daemon.models.musicgen.loader import MusicgenBundle
from daemon.models.musicgen.longform import Window, plan_windows, steps_for, stride_frames
from daemon.models.musicgen.loop import reference_columns
from daemon.models.musicgen.options import EngineOptions
from daemon.models.musicgen.stream_timing import StepTiming, TimedIterator
from daemon.models.musicgen.streaming import iter_frames, run_windows, stream_chunks
from daemon.models.musicgen.streaming_codec import MusicgenCodec, StreamSettings
from daemon.models.musicgen.condition_precision import encoder_precision
from daemon.models.musicgen.text_encoder import TextEncoder
from protocol.errors import InvalidArgument, Unsupported
from protocol.messages import Continue, Generate
from protocol.params import DEFAULT_MAX_DURATION_S, GenerationParams

log = logging.getLogger(__name__)

#: Daemon jobs sharing each decode step at most (continuous batching), and their KV caches' budget.
DEFAULT_MAX_BATCH = 4
DEFAULT_BATCH_MEMORY_MB = 4096.0
#: Frame pieces (one per decode step, mostly) a decode running ahead of its codec may hold: 2 s of
#: codes at 50 Hz, more than the largest chunk, so a chunk's codec decode never holds the steps up.
AHEAD_ITEMS = 100
#: Text conditionings a model keeps for prompts asked again (each a few hundred KiB at most).
KEPT_CONDITIONINGS = 16
#: A job's own step batch (its windows hand off, unbatched) admits whatever its windows take, as a prefill would.
UNBOUNDED_CACHE_BYTES = 2**62

@dataclass
class Render:
    """A finished generation: codes, audio and what it took to make them."""

    codes: torch.Tensor  # [B, K, P0 + N] frame-aligned, the prompt's codes first
    audio: np.ndarray  # [B, channels, samples] float32, the new audio only, exactly duration_s long
    sample_rate: int
    seed: int
    prompt_frames: int
    windows: list[Window] = field(default_factory=list)


@dataclass
class _Plan:
    """One request, planned: its seed, sizes, windows, and how each window's columns are made."""

    seed: int
    samples: int  # new audio samples, exactly duration_s
    new_frames: int
    prompt: torch.Tensor | None  # [B, K, P] codes of the audio prompt
    start_sample: int  # where the new audio starts in the decoded timeline (the prompt's length)
    windows: list[Window]
    columns_for: Callable[[Window, torch.Tensor | None], Iterator[torch.Tensor]]
    on_step: Callable[[], None]  # counts decode steps and reports progress
    handoff: Handoff | None = None  # the windows hand off (handoff.py): close() when the job ends

    def close(self) -> None:
        if self.handoff is not None:
            self.handoff.close()

    @property
    def prompt_frames(self) -> int:
        return 0 if self.prompt is None else self.prompt.shape[-1]


class MusicGen:
    """A resident MusicGen checkpoint (any size, melody, stereo) serving requests."""

    def __init__(self, bundle: MusicgenBundle, *, max_duration_s: float = DEFAULT_MAX_DURATION_S,
                 engine: EngineOptions | None = None, stream_settings: StreamSettings = StreamSettings(),
                 max_batch: int = DEFAULT_MAX_BATCH, batch_memory_mb: float = DEFAULT_BATCH_MEMORY_MB,
                 codec_thread: bool = False, warm_long_windows: bool = False, arena: bool | None = None,
                 arena_graphs: bool | None = None) -> None:
        """`engine` None decodes with the reference loop over transformers' decoder (slow, for checks).

        `warm_long_windows` (the daemon's load): a compiled engine's warm-up also compiles the step of
        jobs longer than ~5 s (`MusicgenEngine.warm_up`).

        `max_batch` daemon jobs at most share each decode step (continuous batching), their KV
        caches within `batch_memory_mb`; +draft jobs run one at a time (their steps are rounds).
        `arena`: windows in one slot arena, one step for all streams (arena.py); None: on a GPU
        without +compile (the compiled step keeps its own CUDA graph per window until the arena's
        is measured there). The native CPU step shares its steps already and takes none.
        `arena_graphs`: the arena's step replayed from CUDA graphs (None: on a GPU).
        """
        self.bundle = bundle
        self.engine = MusicgenEngine(bundle, engine) if engine is not None else None
        self.batch = (StepBatch(self.engine.decoder, max_streams=max_batch,
                                max_cache_bytes=int(batch_memory_mb * 2**20))
                      if self.engine is not None and self.engine.draft is None else None)
        if arena is None:
            arena = bundle.device.type == "cuda" and engine is not None and not engine.compile
        if arena and self.engine is not None and self.batch is not None:
            self.engine.open_arena(max_batch, int(batch_memory_mb * 2**20), graphs=arena_graphs)
        self.stream_settings = stream_settings.validate()
        self.codec_thread = codec_thread  # streams decode on a thread of their own, ahead of the codec
        self._conditionings: dict[tuple[tuple[str | None, ...], float], Conditioning] = {}  # least recent first
        self._conditioning_lock = threading.Lock()  # jobs plan on their own threads
        # A fresh prompt's encoding is on the way to its first sound, and the codec's LSTM reads
        # its weights once per frame: approximate engines keep the LSTM's recurrent weights in int8
        # wherever riffd's int8 and LSTM kernels run, else in bfloat16 wherever its LSTM kernel runs
        # (it widens them to float32 as it reads, so no CPU needs bfloat16 arithmetic; a quarter or
        # half the bytes; audio >= 60 dB), the encoder's linear layers on riffd's int8 kernel
        # wherever it runs and bfloat16 is not on AMX (within 3 %).
        self.text_encoder = TextEncoder(bundle, encoder_precision(engine, bundle.device))
        self.codec = MusicgenCodec.for_bundle(bundle)  # the streaming decode's view of the codec, read once
        if engine is not None and engine.weights != "float32":  # approximate engines (as condition_precision)
            self.codec = self.codec.with_int8_lstm()
        self.max_duration_s = max_duration_s
        self._jam_host: object | None = None  # daemon.models.musicgen.jam.session.JamHost, made on the first jam
        self.model_id = bundle.model_id
        self.sample_rate = bundle.sample_rate
        self.audio_channels = bundle.audio_channels
        self.supports_melody = bundle.is_melody
        if self.engine is not None and engine is not None and engine.warmup:
            self.engine.warm_up(long_windows=warm_long_windows)
            self._warm_stream()

    def _warm_stream(self) -> None:
        """Stream two chunks once, so the first request's first chunk pays no lazy set-up in the
        codec (oneDNN builds its convolution kernels on first use) or the streaming path."""
        frames = self.stream_settings.first_chunk_frames + self.stream_settings.chunk_frames
        params = GenerationParams(duration_s=frames / self.bundle.frame_rate, greedy=True, seed=0)
        started = time.perf_counter()
        for _ in self.stream("warm-up", params, label="warm-up"):
            pass
        log.info("%s: stream path (text encoder, engine, codec) warmed up in %.2f s", self.model_id,
                 time.perf_counter() - started)

    @property
    def engine_name(self) -> str:
        """The decode mode in use ('int8', 'float32+draft'; 'reference' for transformers' own loop)."""
        return self.engine.options.name if self.engine is not None else "reference"

    # Public entry points, audiocraft's names.
    def generate(self, texts: Sequence[str], params: GenerationParams, **hooks) -> Render:
        """Text-conditioned audio for each prompt of a batch (prompts may differ in length)."""
        for text in texts:
            _check_text(text)
        return self._generate(list(texts), params, **hooks)

    def generate_unconditional(self, num_samples: int, params: GenerationParams, **hooks) -> Render:
        return self._generate([None] * num_samples, params, **hooks)

    def generate_continuation(self, prompt: Audio, texts: Sequence[str | None], params: GenerationParams,
                              **hooks) -> Render:
        """Continue `prompt` (any rate and channel count) for `params.duration_s` seconds."""
        return self._generate(list(texts), params, audio_prompt=prompt, **hooks)

    def generate_with_melody(self, texts: Sequence[str | None], melody: Audio, params: GenerationParams,
                             **hooks) -> Render:
        """Follow the chroma of `melody` (melody checkpoints only)."""
        return self._generate(list(texts), params, melody=melody, **hooks)

    def render(self, text: str | None, params: GenerationParams, *, audio_prompt: Audio | None = None,
               melody: Audio | None = None, **hooks) -> Render:
        """One prompt (None: unconditional) with any mix of audio prompt and melody."""
        if text is not None:
            _check_text(text)
        return self._generate([text], params, audio_prompt=audio_prompt, melody=melody, **hooks)

    def stream(self, text: str | None, params: GenerationParams, *, audio_prompt: Audio | None = None,
               melody: Audio | None = None, progress: ProgressFn | None = None,
               should_stop: StopFn | None = None, batched: bool = False, label: str = "",
               priority: int = 0) -> Generator[AudioChunk, None, StreamReport]:
        """One prompt, its audio in chunks while it is generated.

        Chunks are contiguous from offset 0 and `duration_s` long in all; closing the iterator
        stops generation within one step and frees its cache. `batched`: its windows step in the
        shared batch (as `label`, admitted by `priority`), with the very same audio as alone.
        Returns where the time went (a `StreamReport`).
        """
        if text is not None:
            _check_text(text)
        started = time.perf_counter()
        steps = StepTiming(self.bundle.window_frames)
        ahead: Ahead[torch.Tensor] | None = None
        # Batched, the job's first audio goes before others' codec work, and then takes its turn.
        batch = self.batch if batched else None
        listener = batch.listener(priority) if batch is not None else None

        def stop() -> bool:
            # A decode running ahead also stops once its reader is gone (it may wait for admission).
            return (ahead is not None and ahead.stopped()) or (should_stop is not None and should_stop())

        job = self._plan([text], params, audio_prompt=audio_prompt, melody=melody, progress=progress,
                         should_stop=stop, timing=steps, batch=(label, priority) if batched else None,
                         listener=listener)
        planned_s = time.perf_counter() - started

        def decoded() -> Iterator[torch.Tensor]:
            try:
                yield from iter_frames(self.bundle, job.windows, prompt=job.prompt, batch=1,
                                       columns_for=job.columns_for, on_step=job.on_step)
            finally:
                job.close()

        if self.codec_thread:
            # The decode steps on a thread of its own while this one turns codes into audio.
            ahead = Ahead(decoded, depth=AHEAD_ITEMS, name=f"decode {label}".strip())
            frames: Ahead[torch.Tensor] | TimedIterator[torch.Tensor] = ahead
        else:
            frames = TimedIterator(decoded())
        yielded_s = 0.0  # waiting for another job's first audio (StepBatch.codec_turn)

        def codec_turn() -> None:
            nonlocal yielded_s
            if batch is not None and listener is not None:
                started = time.perf_counter()
                batch.codec_turn(listener)
                yielded_s += time.perf_counter() - started

        def codec_s() -> float:
            # The chunk iterator's own time so far, less what it waited on decoded frames (and on
            # another job's first audio), is the codec's.
            waited_s = (frames.wait_s if isinstance(frames, Ahead) else frames.busy_s) + yielded_s
            return chunks.busy_s - waited_s

        chunks = TimedIterator(stream_chunks(self.codec, frames, prompt=job.prompt, new_frames=job.new_frames,
                                             samples=job.samples, start_sample=job.start_sample,
                                             settings=self.stream_settings,
                                             before_codec=codec_turn if listener is not None else None))
        try:
            for chunk in chunks:
                if batch is not None and listener is not None and listener.first_pending:
                    batch.first_audio(listener)
                if not chunk.index:
                    _log_first_chunk(label or self.model_id, time.perf_counter() - started, planned_s, steps,
                                     codec_s=codec_s())
                yield chunk
        finally:
            if batch is not None:
                batch.first_audio(listener)
        # A batched job's columns may come from shared steps other jobs' threads ran: its decode
        # time is its prefills and the shared steps that made its columns, as the batch timed them.
        decode_s = steps.prefill_s + steps.step_s if batched else frames.busy_s
        report = steps.report(self.engine_name, decode_s=decode_s, codec_s=codec_s())
        # Where a long job's time went: its windows' prefills (each later window re-reads its
        # context) against its steps, and the codec.
        late = steps.late_split()
        log.info("%s: %d window(s), prefills %.2f s, %d steps %.2f s (mean %.2f ms), codec %.2f s%s",
                 label or self.model_id, len(job.windows), report.prefill_s, report.steps, report.step_s,
                 1000 * report.step_s / max(report.steps, 1), report.codec_s, f"; {late}" if late else "")
        return report

    def jam_host(self, job_id: str = ""):  # -> daemon.models.musicgen.jam.session.JamHost
        """What this model's jams share (issue 14): made on the first jam, refused where jams cannot run
        (one host for every jam: `job_id`, the jam's, matters only to a cluster's host)."""
        if self._jam_host is None:
            from daemon.models.musicgen.jam.session import JamHost

            self._jam_host = JamHost(self)
        return self._jam_host

    def run_job(self, job: Job, context: JobContext) -> Generator[AudioChunk, None, StreamReport]:
        """The daemon's entry point: a generate or continue job, its audio read through `context`
        (the stream's report is the generator's return value, as `stream`'s)."""
        request = job.request
        if isinstance(request, Generate):
            text, prompt_source, melody_source = request.prompt or None, request.audio_prompt, request.melody
        elif isinstance(request, Continue):
            text, prompt_source, melody_source = request.prompt or None, request.audio, None
        elif request.TYPE.startswith("jukebox"):
            raise Unsupported(f"{request.TYPE} needs a Jukebox model (e.g. debug/jukebox or openai/jukebox-1b-lyrics); "
                              f"{job.model} is not one")
        else:
            raise Unsupported(f"{job.model} does not serve {request.TYPE} requests")
        if melody_source is not None and not self.supports_melody:
            raise Unsupported(f"model {job.model} does not take a melody (use a melody checkpoint)")
        params = dataclasses.replace(job.params, seed=context.seed)
        return self.stream(text, params, audio_prompt=context.read_audio(prompt_source),
                           melody=context.read_audio(melody_source), progress=context.progress,
                           should_stop=context.should_stop, batched=self.batch is not None, label=job.id,
                           priority=job.priority)

    def concurrent_jobs(self, job: Job) -> int:
        """How many jobs like `job` may run at once here: the batch's streams for generate and
        continue, else one."""
        if self.batch is not None and isinstance(job.request, (Generate, Continue)):
            return self.batch.max_streams
        return 1

    def batched_jobs(self) -> tuple[str, ...]:
        """Ids of the jobs stepping in the shared batch now."""
        return self.batch.snapshot().streams if self.batch is not None else ()

    def decode(self, codes: torch.Tensor) -> np.ndarray:
        """Audio `[B, channels, frames * hop]` of frame-aligned codes `[B, K, frames]`."""
        return to_numpy(decode_codes(self.bundle, codes))

    # The one private path.
    def _generate(
        self,
        texts: list[str | None],
        params: GenerationParams,
        *,
        audio_prompt: Audio | None = None,
        melody: Audio | None = None,
        progress: ProgressFn | None = None,
        should_stop: StopFn | None = None,
        on_window: Callable[[Window, torch.Tensor | None, torch.Tensor], None] | None = None,
    ) -> Render:
        job = self._plan(texts, params, audio_prompt=audio_prompt, melody=melody, progress=progress,
                         should_stop=should_stop)
        try:
            codes = run_windows(self.bundle, job.windows, prompt=job.prompt, batch=len(texts),
                                columns_for=job.columns_for, on_step=job.on_step, on_window=on_window)
        finally:
            job.close()
        if should_stop is not None and should_stop():
            from protocol.errors import Cancelled
            raise Cancelled("generation cancelled")
        # Decode with the prompt as left context, then keep exactly the new audio.
        audio = self.decode(codes)[..., job.start_sample:job.start_sample + job.samples]
        return Render(codes=codes, audio=audio, sample_rate=self.bundle.sample_rate, seed=job.seed,
                      prompt_frames=job.prompt_frames, windows=job.windows)

    def _plan(self, texts: list[str | None], params: GenerationParams, *, audio_prompt: Audio | None,
              melody: Audio | None, progress: ProgressFn | None, should_stop: StopFn | None,
              timing: StepTiming | None = None, batch: tuple[str, int] | None = None,
              listener: Listener | None = None) -> _Plan:
        """Validate a request and plan it: what every mode shares before decoding starts."""
        params.validate(max_duration_s=self.max_duration_s)
        if not texts:
            raise InvalidArgument("nothing to generate: no prompts given")
        bundle = self.bundle
        seed = params.seed if params.seed is not None else draw_seed()
        rng = seeded_rng(seed, bundle.device)
        samples = int(math.floor(params.duration_s * bundle.sample_rate + 0.5))
        prompt, start_sample = None, 0
        if audio_prompt is not None:
            prompt, start_sample = self._prompt_codes(audio_prompt)
            prompt = prompt.expand(len(texts), -1, -1)
        prompt_frames = 0 if prompt is None else prompt.shape[-1]
        # New audio starts where the prompt ends, which may fall inside the first generated frame.
        new_frames = math.ceil((start_sample - prompt_frames * bundle.hop_length + samples) / bundle.hop_length)
        windows = plan_windows(new_frames, prompt_frames, bundle.window_frames,
                               stride_frames(params.extend_stride_s, bundle))
        log.info("%s: %d frames in %d window(s), seed %d", self.model_id, new_frames, len(windows), seed)

        static_cond = None if melody is not None else self._text_conditioning(texts, params.guidance_scale)
        total_steps, done = steps_for(windows, bundle), 0
        step_batch = self.batch if batch is not None else None
        handoff = None
        if (self.engine is not None and self.engine.draft is None and len(windows) > 1
                and hands_off(self.engine.decoder, static_cond)):
            # Each window after the first is warmed by the one before (handoff.py). Batched or not, the
            # windows go through a step batch, so a seeded job's codes are the same either way.
            handoff = Handoff()
            if step_batch is None:
                step_batch = StepBatch(self.engine.decoder, max_streams=1, max_cache_bytes=UNBOUNDED_CACHE_BYTES)

        def columns_for(window: Window, window_prompt: torch.Tensor | None) -> Iterator[torch.Tensor]:
            cond = static_cond or build_conditioning(
                bundle, texts, guidance_scale=params.guidance_scale, melody=melody,
                melody_offset_s=max(0, window.start_frame) / bundle.frame_rate, encoder=self.text_encoder)
            if step_batch is not None:
                label, priority = batch if batch is not None else ("", 0)
                following = windows[window.index + 1] if window.index + 1 < len(windows) else None
                shift = seam_shift(window, following) if handoff is not None and following is not None else None
                next_window = NextWindow(following, shift, cond) if following is not None and shift is not None else None
                return step_batch.columns(bundle, cond, window_prompt, window.new_frames, params, rng, should_stop,
                                          label=label, priority=priority, listener=listener,
                                          timed=None if timing is None else timing.recorder(window.prompt_frames),
                                          handoff=handoff, next_window=next_window)
            if self.engine is not None:
                produced = self.engine.columns(cond, window_prompt, window.new_frames, params, rng, should_stop)
            else:
                produced = reference_columns(bundle, cond, window_prompt, window.new_frames, params, rng, should_stop)
            return produced if timing is None else timing.columns(produced, window.prompt_frames)

        def on_step() -> None:
            nonlocal done
            done += 1
            if progress is not None:
                progress(done, total_steps)

        return _Plan(seed, samples, new_frames, prompt, start_sample, windows, columns_for, on_step, handoff)

    def _text_conditioning(self, texts: list[str | None], guidance_scale: float) -> Conditioning:
        """The text encoder's conditioning for `texts`, from the last few kept: a performer who
        triggers the same prompt again starts decoding without encoding it again (the same tensors
        the encoder gives, so the same music; each job gets its own copy)."""
        key = (tuple(texts), float(guidance_scale))
        with self._conditioning_lock:
            kept = self._conditionings.pop(key, None)
        if kept is None:
            kept = build_conditioning(self.bundle, texts, guidance_scale=guidance_scale, encoder=self.text_encoder)
        with self._conditioning_lock:
            self._conditionings[key] = kept  # the most recent last
            while len(self._conditionings) > KEPT_CONDITIONINGS:
                self._conditionings.pop(next(iter(self._conditionings)))
        return dataclasses.replace(kept, hidden_states=kept.hidden_states.clone(),
                                   attention_mask=None if kept.attention_mask is None else kept.attention_mask.clone())

    def _prompt_codes(self, audio_prompt: Audio) -> tuple[torch.Tensor, int]:
        """Codes `[1, K, P]` of the prompt's whole codec frames (its last `window_frames - 1` when
        it has more), and its length in model samples from the first frame encoded.

        Only whole frames are encoded: a padded last frame would put silence where the music
        goes on. The continuation then starts at the prompt's exact end, so a DAW region and its
        continuation join on the sample.
        """
        bundle = self.bundle
        prompt = conform(audio_prompt, bundle.sample_rate, bundle.audio_channels)
        frames = prompt.frames // bundle.hop_length
        if frames == 0:
            raise InvalidArgument(f"the audio prompt is {audio_prompt.duration_s * 1000:.1f} ms long, shorter than one "
                                  f"codec frame ({1000 / bundle.frame_rate:.0f} ms)")
        # A prompt longer than the window is continued from its last window_frames - 1 frames (a
        # window needs one slot to make a frame): a producer continuing a whole song means its end.
        first_sample = max(0, frames - (bundle.window_frames - 1)) * bundle.hop_length
        if first_sample:
            log.info("%s: the audio prompt is %.2f s long; continuing from its last %.2f s (the model's window)",
                     self.model_id, audio_prompt.duration_s, (prompt.frames - first_sample) / bundle.sample_rate)
        whole = Audio(prompt.samples[:, first_sample:frames * bundle.hop_length], bundle.sample_rate)
        return encode_prompt(bundle, whole), prompt.frames - first_sample


def _log_first_chunk(label: str, took_s: float, planned_s: float, steps: StepTiming, codec_s: float) -> None:
    """Where a stream's first chunk went (time to first audio is what a performer waits for):
    planning (the text encoder, the audio prompt's encoding), the window's prefill, the decode steps
    its frames need (the codec's lookahead and the delay pattern's ramp), their codec decode, and
    the rest (cache, admission, hand-overs between threads)."""
    other_s = took_s - planned_s - steps.prefill_s - steps.step_s - codec_s
    log.info("%s: first chunk after %.1f ms: plan (text encoder) %.1f ms, prefill %.1f ms, %d steps %.1f ms, "
             "codec %.1f ms, other %.1f ms", label, 1000 * took_s, 1000 * planned_s, 1000 * steps.prefill_s,
             steps.steps, 1000 * steps.step_s, 1000 * codec_s, 1000 * other_s)


def _check_text(text: str) -> None:
    if not isinstance(text, str) or not text.strip():
        raise InvalidArgument("the prompt is empty: describe the music, or generate unconditionally")
