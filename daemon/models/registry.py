"""Model ids to resident backends: presets, local folders and hub ids, MusicGen and Jukebox."""

from __future__ import annotations

import logging
from pathlib import Path

from daemon.backend import MusicBackend
from daemon.models import hub
from daemon.models.musicgen import presets as musicgen_presets
from protocol.errors import UnknownModel
from protocol.params import DEFAULT_MAX_DURATION_S

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """Where presets are built; the daemon's config may point elsewhere."""
    return Path.home() / ".cache" / "riffd"


def known_presets() -> list[str]:
    return sorted(musicgen_presets.PRESETS)


def resolve_folder(model_id: str, *, cache_dir: Path | None = None) -> Path:
    """The folder holding `model_id`'s files: a built preset, a local folder or a hub snapshot."""
    if not isinstance(model_id, str) or not model_id.strip():
        raise UnknownModel("no model given")
    cache_dir = cache_dir or default_cache_dir()
    if musicgen_presets.is_preset(model_id):
        return musicgen_presets.ensure_preset(model_id, cache_dir)
    if model_id.startswith(("debug/", "random/")):
        raise UnknownModel(f"unknown preset {model_id!r}; presets are: {', '.join(known_presets())}")
    folder = hub.local_folder(model_id)
    if folder is not None:
        return folder
    from daemon.models.musicgen.loader import HUB_PATTERNS

    return hub.resolve_hub(model_id, HUB_PATTERNS)


def load_backend(model_id: str, *, device: str = "auto", cache_dir: Path | None = None,
                 max_duration_s: float = DEFAULT_MAX_DURATION_S, engine: str | None = "float32") -> MusicBackend:
    """Load `model_id` onto `device` and return it ready to serve.

    `engine` picks MusicGen's decode speed levers ('float32', 'bfloat16', 'float16', 'int8',
    'int4', with '+compile' or '+nowarmup'; see musicgen.speed.EngineOptions); None keeps
    transformers' reference loop.
    """
    from daemon.models.musicgen.generator import MusicGen
    from daemon.models.musicgen.loader import load_folder, pick_device
    from daemon.models.musicgen.speed import EngineOptions

    options = EngineOptions.parse(engine) if engine is not None else None
    folder = resolve_folder(model_id, cache_dir=cache_dir)
    bundle = load_folder(folder, model_id=model_id, device=pick_device(device))
    return MusicGen(bundle, max_duration_s=max_duration_s, engine=options)
