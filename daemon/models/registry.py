"""Model ids to resident backends: presets, local folders and hub ids, MusicGen and Jukebox."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from daemon.backend import MusicBackend
from daemon.models import hub
from daemon.models.musicgen import presets as musicgen_presets
from protocol.errors import RiffdError, UnknownModel
from protocol.params import DEFAULT_MAX_DURATION_S

log = logging.getLogger(__name__)

#: Jukebox presets (built by daemon.models.jukebox.presets, which has the same tuple).
JUKEBOX_PRESETS = ("debug/jukebox",)
#: A Jukebox hub checkpoint: config, (sharded) weights as safetensors or pytorch_model*.bin,
#: their index, and the tokenizer's vocabularies (artists, genres, lyrics; *.json covers them).
JUKEBOX_HUB_PATTERNS = ("*.json", "*.safetensors", "pytorch_model*.bin")


def default_cache_dir() -> Path:
    """Where presets are built; the daemon's config may point elsewhere."""
    return Path.home() / ".cache" / "riffd"


def known_presets() -> list[str]:
    return sorted((*musicgen_presets.PRESETS, *JUKEBOX_PRESETS))


def hub_patterns(model_id: str) -> tuple[str, ...]:
    """The files of a hub checkpoint riffd needs, by model family."""
    from daemon.models.musicgen.loader import HUB_PATTERNS

    if is_jukebox(model_id):
        return JUKEBOX_HUB_PATTERNS

    return HUB_PATTERNS


def is_jukebox(model_id: str) -> bool:
    """True for Jukebox ids: its presets, folders whose config.json says model_type "jukebox",
    and hub ids named like OpenAI's (openai/jukebox-1b-lyrics, openai/jukebox-5b-lyrics)."""
    if model_id in JUKEBOX_PRESETS:
        return True
    if hub.looks_like_path(model_id):
        return _model_type(Path(model_id).expanduser()) == "jukebox"
    return "jukebox" in model_id.rsplit("/", 1)[-1].lower()


def _model_type(folder: Path) -> str | None:
    """config.json's model_type, or None when there is no readable one."""
    try:
        return json.loads((folder / "config.json").read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError):
        return None


def resolve_folder(model_id: str, *, cache_dir: Path | None = None) -> Path:
    """The folder holding `model_id`'s files: a built preset, a local folder or a hub snapshot."""
    if not isinstance(model_id, str) or not model_id.strip():
        raise UnknownModel("no model given")
    cache_dir = cache_dir or default_cache_dir()
    if musicgen_presets.is_preset(model_id):
        return musicgen_presets.ensure_preset(model_id, cache_dir)
    if model_id in JUKEBOX_PRESETS:
        from daemon.models.jukebox import presets as jukebox_presets

        return jukebox_presets.ensure_preset(model_id, cache_dir)
    _refuse_unknown_preset(model_id)
    folder = hub.local_folder(model_id)
    if folder is not None:
        return folder
    return hub.resolve_hub(model_id, hub_patterns(model_id))


def pull(model_id: str) -> Path | None:
    """`riffd pull`: download hub id `model_id` into the Hugging Face cache and return its folder;
    None for a preset or a model folder, which need no download. An id that loading would refuse
    as unknown (an unknown preset, a missing folder, no hub id) is refused the same way."""
    if musicgen_presets.is_preset(model_id) or model_id in JUKEBOX_PRESETS:
        return None
    _refuse_unknown_preset(model_id)
    if hub.local_folder(model_id) is not None:
        return None
    return hub.download(model_id, hub_patterns(model_id))


def _refuse_unknown_preset(model_id: str) -> None:
    """The preset prefixes name presets only: anything else under them is a typo, never a hub id."""
    if model_id.startswith(("debug/", "random/")):
        raise UnknownModel(f"unknown preset {model_id!r}; presets are: {', '.join(known_presets())}")


def device_in_use(device: str) -> str:
    """The device `load_backend(device=device)` puts models on, by name: the --device setting
    resolved ("auto" becomes "cpu", "cuda:0" or "mps"). A device this machine lacks stays as it was
    asked for: loading a model onto it fails and says why."""
    from daemon.models.musicgen.loader import device_name, pick_device

    try:
        return device_name(pick_device(device))
    except RiffdError:
        return device


def load_backend(model_id: str, *, device: str = "auto", cache_dir: Path | None = None,
                 max_duration_s: float = DEFAULT_MAX_DURATION_S, engine: str | None = "float32",
                 max_batch: int = 4, batch_memory_mb: float = 4096.0, codec_thread: bool = False) -> MusicBackend:
    """Load `model_id` onto `device` and return it ready to serve.

    `engine` picks MusicGen's decode speed levers ('float32', 'bfloat16', 'float16', 'int8',
    'int4', with '+compile', '+kv4' or '+nowarmup'; see musicgen.options.EngineOptions), or 'auto': the
    fastest mode that keeps to float32 on this machine (musicgen.engine_modes); None keeps
    transformers' reference loop. `codec_thread`: a MusicGen stream decodes ahead of its codec
    on a thread of its own.
    """
    from daemon.models.musicgen.engine_choice import AUTO
    from daemon.models.musicgen.engine_modes import resolve
    from daemon.models.musicgen.backend import MusicGen
    from daemon.models.musicgen.loader import load_folder, pick_device
    from daemon.models.musicgen.options import EngineOptions

    auto = engine is not None and engine.strip() == AUTO
    options = EngineOptions.parse(engine) if engine is not None and not auto else None
    folder = resolve_folder(model_id, cache_dir=cache_dir)
    if _model_type(folder) == "jukebox":
        from daemon.models.jukebox import backend as jukebox_backend

        # auto: Jukebox's priors have no faster mode measured here; they stay exact.
        weights, compile = (options.weights, options.compile) if options is not None else ("float32", False)
        if weights not in jukebox_backend.PRIOR_DTYPES:
            # int8/int4 are MusicGen's decode formats; a daemon serving both keeps Jukebox exact.
            log.info("engine %s has no Jukebox form: %s keeps float32 priors", weights, model_id)
            weights = "float32"
        return jukebox_backend.load(folder, model_id, device=pick_device(device), max_duration_s=max_duration_s,
                                    weights=weights, compile=compile)
    bundle = load_folder(folder, model_id=model_id, device=pick_device(device))
    setup = resolve(engine, bundle, cache_dir or default_cache_dir()) if engine is not None else None
    return MusicGen(bundle, max_duration_s=max_duration_s, engine=setup.options if setup else None,
                    max_batch=max_batch, batch_memory_mb=batch_memory_mb, codec_thread=codec_thread,
                    warm_long_windows=True)
