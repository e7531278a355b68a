"""Path confinement: what a request may make the daemon read or write on its disk.

Inputs only from allowed folders (the --out folder and each --audio-dir), outputs only under
--out, model folders only from --model-dir (or those the operator named with --model). A path
is refused if it is relative, has a `..` part, or resolves (symlinks followed) outside those
folders, so a link planted inside an allowed folder cannot lead out of it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path, PurePath

from daemon.models.hub import looks_like_path
from protocol.errors import PathNotAllowed


class PathPolicy:
    """The daemon's allowed input folders and its output folder, resolved once at start."""

    def __init__(self, out_dir: Path, audio_dirs: Iterable[Path] = (), *, model_dirs: Iterable[Path] = (),
                 configured_models: Iterable[str] = ()) -> None:
        self.out_dir = out_dir.resolve()
        self.read_dirs = tuple(dict.fromkeys([self.out_dir, *(Path(d).resolve() for d in audio_dirs)]))
        self.model_dirs = tuple(Path(d).expanduser().resolve() for d in model_dirs)
        self._configured_models = frozenset(configured_models)

    def model(self, model_id: str) -> None:
        """PathNotAllowed if `model_id` is a folder on disk outside --model-dir.

        Presets and hub ids pass; so do the ids the operator gave with --model. A request must
        not make the daemon load (or probe for) any folder it can read.
        """
        if model_id in self._configured_models or not looks_like_path(model_id):
            return
        shown = model_id if len(model_id) <= 200 else model_id[:197] + "..."
        if ".." in PurePath(model_id).parts:
            raise PathNotAllowed(f"model folder {shown!r} must not contain '..'")
        try:
            real = Path(os.path.realpath(Path(model_id).expanduser()))
        except (OSError, ValueError) as exc:
            raise PathNotAllowed(f"model folder {shown!r} cannot be resolved: {exc}") from None
        if not any(real.is_relative_to(folder) for folder in self.model_dirs):
            raise PathNotAllowed(f"model folder {shown!r} is outside the folders this daemon loads models from "
                                 "(start it with --model-dir, or name the model with --model)")

    def input(self, path: str, *, what: str = "audio path") -> Path:
        """The real path of an input a request names (audio, or `what` it is, named in the refusal);
        PathNotAllowed if it is outside."""
        shown = path if len(path) <= 200 else path[:197] + "..."
        pure = PurePath(path)
        if not pure.is_absolute():
            raise PathNotAllowed(f"{what} {shown!r} must be absolute (the daemon does not share your folder)")
        if ".." in pure.parts:
            raise PathNotAllowed(f"{what} {shown!r} must not contain '..'")
        try:
            real = Path(os.path.realpath(path))
        except (OSError, ValueError) as exc:
            raise PathNotAllowed(f"{what} {shown!r} cannot be resolved: {exc}") from None
        if not any(real.is_relative_to(folder) for folder in self.read_dirs):
            allowed = ", ".join(str(folder) for folder in self.read_dirs)
            inline = ", or send the samples inline" if what == "audio path" else ""
            raise PathNotAllowed(f"{what} {shown!r} is outside the folders this daemon reads from ({allowed}); "
                                 f"start it with --audio-dir{inline}")
        return real

    def output(self, path: Path) -> Path:
        """`path` if writing it stays under --out once symlinks are followed; else PathNotAllowed."""
        if ".." in path.parts:
            raise PathNotAllowed(f"output path {path} must not contain '..'")
        real = Path(os.path.realpath(path))
        if not real.is_relative_to(self.out_dir):
            raise PathNotAllowed(f"output path {path} leads outside the output folder {self.out_dir}")
        return path


__all__ = ["PathPolicy"]
