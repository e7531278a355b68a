"""Find and read Hugging Face Jukebox checkpoints: local folders and hub ids.

A folder holds `config.json` and the weights as `model.safetensors`, sharded
`model-*.safetensors` (with an index), `pytorch_model.bin`, or sharded
`pytorch_model-*.bin` (read with `weights_only=True`, never unpickling code).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from collections.abc import Iterable

import torch

from daemon.config import environment_hub_offline

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
VOCAB_FILES = ("artists.json", "genres.json", "lyrics.json")


class CheckpointNotFound(FileNotFoundError):
    """The model is neither a local folder nor available from the hub (or its cache)."""


class CheckpointMismatch(ValueError):
    """The weights do not fit the architecture the config describes."""


def resolve(path_or_hub_id: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Path:
    """A local folder as is; otherwise a hub id fetched (or found in the cache) with huggingface_hub.

    Honours HF_HUB_OFFLINE (read at call time): offline and not cached raises
    CheckpointNotFound naming the model and how to get it.
    """
    local = Path(path_or_hub_id).expanduser()
    if local.is_dir():
        if not (local / CONFIG_FILE).is_file():
            raise CheckpointNotFound(f"{local} has no {CONFIG_FILE}: not a Hugging Face Jukebox folder")
        return local
    name = str(path_or_hub_id)
    if name.count("/") != 1 or name.startswith((".", "/", "~")):
        raise CheckpointNotFound(f"no folder {name!r}, and it is not a hub id like 'openai/jukebox-1b-lyrics'")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    patterns = [CONFIG_FILE, "*.safetensors", "*.safetensors.index.json", "pytorch_model*.bin",
                "pytorch_model.bin.index.json", "tokenizer_config.json", *VOCAB_FILES]
    try:
        return Path(
            snapshot_download(name, allow_patterns=patterns, cache_dir=cache_dir, local_files_only=environment_hub_offline())
        )
    except LocalEntryNotFoundError as error:
        why = "downloads are off (HF_HUB_OFFLINE)" if environment_hub_offline() else "the hub cannot be reached"
        raise CheckpointNotFound(
            f"model {name} is not in the local Hugging Face cache and {why}; `riffd pull {name}` fetches it"
        ) from error
    except HfHubHTTPError as error:  # repository not found, gated, hub errors
        raise CheckpointNotFound(f"could not get model {name} from the hub: {error}") from error



def read_config(folder: Path) -> dict:
    with open(folder / CONFIG_FILE, encoding="utf-8") as handle:
        return json.load(handle)


def weight_files(folder: Path) -> list[Path]:
    """The weight files of a checkpoint folder, safetensors preferred."""
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = folder / index_name
        if index.is_file():
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            return [folder / shard for shard in shards]
    for pattern in ("model.safetensors", "model-*.safetensors", "pytorch_model.bin", "pytorch_model-*.bin"):
        found = sorted(folder.glob(pattern))
        if found:
            return found
    raise CheckpointNotFound(f"{folder} has no model.safetensors or pytorch_model*.bin")


def read_weights(files: Iterable[Path]) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    for file in files:
        if file.suffix == ".safetensors":
            from safetensors.torch import load_file

            state.update(load_file(str(file)))
        else:
            state.update(torch.load(file, map_location="cpu", weights_only=True))
    return state


def load_state(
    model: torch.nn.Module, state: dict[str, torch.Tensor], tied: Iterable[str] = (), assign: bool = False
) -> dict[str, torch.Tensor]:
    """Put `state` into `model`, every key used and every parameter filled.

    `tied` names parameters that share storage with another (the output heads tied to their
    embeddings): they may be absent from the file, and are not loaded; the ones present are
    returned for `check_tied`. `assign` takes the tensors as they are (for a model built on
    the meta device) instead of copying them into existing parameters.
    """
    expected = model.state_dict()
    tied = set(tied)
    missing = [k for k in expected if k not in state and k not in tied]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise CheckpointMismatch(
            f"checkpoint does not fit the config: {len(missing)} missing ({missing[:5]}), "
            f"{len(unexpected)} unexpected ({unexpected[:5]})"
        )
    for key, value in state.items():
        if value.shape != expected[key].shape:
            raise CheckpointMismatch(f"{key}: checkpoint {tuple(value.shape)}, model {tuple(expected[key].shape)}")
    tied_in_file = {k: state.pop(k) for k in tied if k in state}
    model.load_state_dict(state, strict=False, assign=assign)
    return tied_in_file


def check_tied(model: torch.nn.Module, tied_in_file: dict[str, torch.Tensor]) -> None:
    """Warn where a checkpoint's copy of a tied parameter differs from the one in use."""
    current = model.state_dict()
    for key, value in tied_in_file.items():
        if not torch.allclose(value.to(current[key].dtype), current[key], atol=1e-3 if value.dtype != current[key].dtype else 1e-6):
            log.warning("%s differs from the embedding it is tied to; using the embedding", key)
