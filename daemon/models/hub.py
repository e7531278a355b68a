"""Finding a checkpoint's folder: a local folder as `save_pretrained` wrote it, or a Hugging Face
hub id resolved through the local cache (downloading only when online).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

from protocol.errors import ModelUnavailable, UnknownModel

log = logging.getLogger(__name__)

_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")


def looks_like_path(model_id: str) -> bool:
    return model_id.startswith(("/", "./", "../", "~")) or Path(model_id).expanduser().exists()


def local_folder(model_id: str) -> Path | None:
    """The folder `model_id` names on disk, or None when it is not a path."""
    if not looks_like_path(model_id):
        return None
    folder = Path(model_id).expanduser()
    if not folder.is_dir():
        raise UnknownModel(f"model folder {model_id} does not exist")
    if not (folder / "config.json").is_file():
        raise UnknownModel(f"{model_id} is not a model folder (no config.json; expected a save_pretrained folder)")
    return folder


def check_hub_id(model_id: str) -> None:
    """Refuse, as UnknownModel, an id that cannot be a hub repository (a typo of a preset's name, say)."""
    if not _REPO_ID.match(model_id):
        raise UnknownModel(f"unknown model {model_id!r}: not a preset, a model folder or a hub id like facebook/musicgen-small")


def resolve_hub(model_id: str, allow_patterns: Sequence[str]) -> Path:
    """The cached snapshot of hub repo `model_id`, downloaded first when online and missing."""
    check_hub_id(model_id)
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(model_id, allow_patterns=list(allow_patterns), local_files_only=True))
    except LocalEntryNotFoundError:
        pass
    if constants.HF_HUB_OFFLINE:
        raise ModelUnavailable(
            f"model {model_id} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set: "
            f"run `riffd pull {model_id}` while online, or pass a local folder"
        )
    log.info("model %s is not cached: downloading it", model_id)
    return download(model_id, allow_patterns)


def download(model_id: str, allow_patterns: Sequence[str]) -> Path:
    """Fetch `model_id` from the hub into the local cache (what `riffd pull` does).

    Its errors say what to change, not to run `riffd pull`: this is what that command runs.
    """
    check_hub_id(model_id)
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    try:
        return Path(snapshot_download(model_id, allow_patterns=list(allow_patterns)))
    except LocalEntryNotFoundError as exc:  # offline mode, or the hub client cannot connect
        why = ("HF_HUB_OFFLINE is set, so nothing is downloaded: unset it on a machine that is online and try again"
               if constants.HF_HUB_OFFLINE else
               "the Hugging Face hub cannot be reached: connect to the internet and try again")
        raise ModelUnavailable(f"model {model_id} is not in the local cache and {why}, or pass a local folder") from exc
    except GatedRepoError as exc:
        raise ModelUnavailable(f"model {model_id} is gated: accept its terms on the hub and log in ({exc})") from exc
    except RepositoryNotFoundError as exc:
        raise UnknownModel(f"unknown model {model_id}: no such repository on the Hugging Face hub") from exc
    except (HfHubHTTPError, OSError, ValueError) as exc:
        raise ModelUnavailable(
            f"could not download model {model_id} ({type(exc).__name__}); check the network and try again, "
            f"or pass a local folder"
        ) from exc
