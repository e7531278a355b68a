"""A jam's state as a file: safetensors (its tensors) with a JSON header (everything else).

What is saved is what the next samples depend on, exactly: the recent frames, the running window's
columns and filled cache slots (and the next window's, when it is being built), the scores for the
next column, the random generator, the codec's held-back frames and crossfade tail, the prompts
and their history, the sampling controls, the window geometry and the changes still waiting for
their frame (with the seed the jam started from, which is only reported). Nothing is recomputed on resume
but the cross-attention keys and values, which depend on the prompts alone. A resume must run the
same model with the same engine mode (their cache and kernels made the floats); the file says
which, and a mismatch is refused naming both.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from daemon.file_mode import published
from daemon.models.musicgen.jam.prompts import WeightedPrompts
from daemon.models.musicgen.jam.types import Change, JamSampling, JamShape, JamState, WindowState
from daemon.models.musicgen.loader import MusicgenBundle
from daemon.models.musicgen.streaming_codec import StreamSettings
from protocol.errors import BadSnapshot, InvalidArgument

FORMAT = "riffd-jam"
VERSION = 3
#: What each version changed, named when an older snapshot is refused (its tensors would not restore
#: exactly: a resume continues exactly or not at all).
CHANGES = {2: "the +kv4 attention cache's scales are float16 (version 1: float32)",
           3: "changes waiting for their frame and the jam's seed are saved"}
#: Versions this riffd reads. Version 2 had no changes waiting and no seed, and restores as such:
#: a version 2 file taken while a change waited resumes without it (as version 2 riffd did).
READABLE = (2, 3)
SUFFIX = ".riffdjam"
_META_KEY = "riffd"
#: The codec stream's snapshot tensors are saved under this prefix.
_CODEC = "codecstream."


def model_fingerprint(bundle: MusicgenBundle) -> str:
    """A short hash of the checkpoint's shape and a few of its weights: two checkpoints of one
    architecture (a real and a random one) differ."""
    decoder = bundle.model.decoder.model.decoder
    digest = hashlib.sha256()
    facts = [bundle.sample_rate, bundle.hop_length, bundle.num_codebooks, bundle.audio_channels,
             bundle.window_frames, int(decoder.config.hidden_size), int(decoder.config.num_hidden_layers)]
    digest.update(json.dumps(facts).encode())
    for tensor in (decoder.embed_tokens[0].weight[:2], bundle.model.decoder.lm_heads[0].weight[:2]):
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def save_state(path: Path, state: JamState, *, identity: dict[str, str], offset_samples: int) -> None:
    """Write `state` to `path` atomically (a temporary file renamed into place)."""
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {"recent": state.recent, "rng": state.rng}
    tensors.update({f"{_CODEC}{name}": tensor for name, tensor in state.codec.items()})
    windows = {"window": state.window, "shadow": state.shadow}
    for name, window in windows.items():
        if window is None:
            continue
        tensors[f"{name}.sequence"] = window.sequence
        if window.logits is not None:
            tensors[f"{name}.logits"] = window.logits
        for key, slots in window.slots.items():
            tensors[f"{name}.{key}"] = slots
    meta = {
        "format": FORMAT, "version": VERSION, **identity, "offset_samples": offset_samples,
        "shape": _fields(state.shape), "stream": _fields(state.stream), "sampling": _fields(state.sampling),
        "prompts": _prompts(state.prompts), "history": [[first, _prompts(p)] for first, p in state.history],
        "frames": state.frames, "seed": state.seed,
        "pending": [{"prompts": None if change.prompts is None else _prompts(change.prompts),
                     "sampling": [[name, value] for name, value in change.sampling], "at_frame": change.at_frame}
                    for change in state.pending],
        "windows": {name: None if window is None else {
            "start_frame": window.start_frame, "context_frames": window.context_frames, "columns": window.columns,
            "fed": window.fed, "prompts": _prompts(window.prompts),
            "logits_prompts": None if window.logits_prompts is None else _prompts(window.logits_prompts),
            "slots": sorted(window.slots)} for name, window in windows.items()},
    }
    with published(path, prefix=f".{path.name}.", suffix=".partial") as temporary:
        # Straight to the file: a late window's cache is tens of MB, and no second copy is made in memory.
        save_file({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}, temporary,
                  metadata={_META_KEY: json.dumps(meta)})


def read_identity(path: Path) -> dict[str, Any]:
    """The header of a snapshot (raises BadSnapshot for anything that is not one riffd can read)."""
    return _open(path)[0]


def read_seed(path: Path) -> int | None:
    """The seed the snapshot's jam was started with, from its header alone (no tensors read); None
    when the file does not say (version 2) or is no snapshot (resuming it says why)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = json.loads((handle.metadata() or {}).get(_META_KEY) or "null")
    except (SafetensorError, OSError, ValueError, RuntimeError):
        return None
    seed = meta.get("seed") if isinstance(meta, dict) and meta.get("format") == FORMAT else None
    return seed if isinstance(seed, int) and not isinstance(seed, bool) else None


def load_state(path: Path, *, identity: dict[str, str]) -> tuple[JamState, int]:
    """The state saved at `path` and the jam offset (samples) it continues from; BadSnapshot when it
    is not a riffd jam snapshot, is corrupt, or was taken with another model or engine mode."""
    meta, tensors = _open(path)
    for key, expected in identity.items():
        found = meta.get(key)
        if found != expected:
            what = {"model": "model", "fingerprint": "checkpoint (same id, other weights)", "engine": "engine mode",
                    "cache": "attention cache format"}.get(key, key)
            raise BadSnapshot(f"{path.name} was taken with {what} {found!r}; this jam runs {expected!r}, and a resume "
                              "continues exactly only on the same")
    try:
        windows = meta["windows"]
        state = JamState(
            shape=JamShape(**meta["shape"]), stream=StreamSettings(**meta["stream"]),
            sampling=JamSampling(**meta["sampling"]), prompts=_weighted(meta["prompts"]),
            history=[(int(first), _weighted(p)) for first, p in meta["history"]],
            frames=int(meta["frames"]), recent=tensors["recent"], rng=tensors["rng"],
            codec={name[len(_CODEC):]: tensor for name, tensor in tensors.items() if name.startswith(_CODEC)},
            window=_window(windows["window"], tensors, "window"),
            shadow=_window(windows["shadow"], tensors, "shadow") if windows.get("shadow") else None,
            pending=[_change(change) for change in meta.get("pending", [])],
            seed=None if meta.get("seed") is None else int(meta["seed"]),
        )
        offset = int(meta["offset_samples"])
    except (KeyError, TypeError, ValueError, InvalidArgument) as exc:
        raise BadSnapshot(f"{path.name} is a riffd jam snapshot with a damaged header ({type(exc).__name__}: {exc})") \
            from None
    emitted = state.codec.get("emitted")
    if state.rng.dtype != torch.uint8 or state.recent.dtype != torch.long or emitted is None or offset != int(emitted):
        raise BadSnapshot(f"{path.name} is damaged: its tensors do not match its header")
    return state, offset


def _open(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            header = (handle.metadata() or {}).get(_META_KEY)
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except FileNotFoundError:
        raise BadSnapshot(f"no snapshot file {path.name}") from None
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise BadSnapshot(f"{path.name} is not a riffd jam snapshot (unreadable as one: {exc})") from None
    try:
        meta = json.loads(header) if header is not None else None
    except ValueError:
        meta = None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise BadSnapshot(f"{path.name} is not a riffd jam snapshot (no {FORMAT} header)")
    version = meta.get("version")
    if version not in READABLE:
        since = "; ".join(f"{number}: {change}" for number, change in sorted(CHANGES.items())
                          if isinstance(version, int) and number > version)
        raise BadSnapshot(f"{path.name} is a version {version!r} jam snapshot; this riffd reads versions "
                          f"{READABLE[0]} to {READABLE[-1]}" + (f" (changed since: {since})" if since else ""))
    return meta, tensors


def _fields(value: object) -> dict[str, Any]:
    import dataclasses

    return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}


def _prompts(prompts: WeightedPrompts) -> list[list[Any]]:
    return [[text, weight] for text, weight in zip(prompts.texts, prompts.weights)]


def _weighted(pairs: list[list[Any]]) -> WeightedPrompts:
    return WeightedPrompts.of(tuple(str(text) for text, _ in pairs), tuple(float(weight) for _, weight in pairs))


def _change(meta: dict[str, Any]) -> Change:
    """A waiting change as saved (`sampling` keeps top_k an int: JSON tells 250 from 250.0)."""
    at_frame = meta["at_frame"]
    sampling = tuple((str(name), value) for name, value in meta["sampling"])
    # Checked here, not when the loop applies it: a damaged header is refused before the jam starts.
    JamSampling(**dict(sampling)).params().validate()
    return Change(prompts=None if meta["prompts"] is None else _weighted(meta["prompts"]), sampling=sampling,
                  at_frame=None if at_frame is None else int(at_frame))


def _window(meta: dict[str, Any], tensors: dict[str, torch.Tensor], name: str) -> WindowState:
    return WindowState(
        start_frame=int(meta["start_frame"]), context_frames=int(meta["context_frames"]),
        columns=int(meta["columns"]), fed=int(meta["fed"]), sequence=tensors[f"{name}.sequence"],
        prompts=_weighted(meta["prompts"]),
        logits_prompts=_weighted(meta["logits_prompts"]) if meta.get("logits_prompts") else None,
        logits=tensors.get(f"{name}.logits"),
        slots={key: tensors[f"{name}.{key}"] for key in meta["slots"]},
    )
