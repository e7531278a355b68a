"""Where PyTorch's compiler (Inductor) keeps riffd's compiled steps: a folder per CPU capability.

The `+compile` modes and Jukebox's compiled step go through torch.compile. Inductor writes its CPU
kernels for the vector instruction set that ATEN_CPU_CAPABILITY names (unset: the best the CPU has),
but its FX graph cache keys the generated code without it: a later process with another capability
takes the cached code and builds it for its own, and the two disagree about vector widths. With
torch 2.13.0 on a 2-core Intel Xeon with AVX-512, a function compiled with the variable unset and
replayed from the cache with `ATEN_CPU_CAPABILITY=avx2` returned values off by 1e33 (debug/musicgen's
compiled arena step: 7.6 % of the eager greedy codes); cached with avx2 and replayed unset, the
process died in malloc; replayed with `default`, the cached code no longer compiled. riffd sets the
variable itself to emulate a CPU class (`bench --emulate avx2`, the CPU classes' test runs), so the
same cache sees both. A folder per capability keeps each one's code apart
(tests/daemon/test_inductor_cache.py).

This must run before Inductor first reads TORCHINDUCTOR_CACHE_DIR: `daemon` calls it when imported.
Whoever sets TORCHINDUCTOR_CACHE_DIR themselves keeps their folder (and keeps it to one capability);
a child process inherits its parent's folder and moves to its own where its capability differs.
"""

from __future__ import annotations

import getpass
import os
import re
import tempfile
from collections.abc import MutableMapping

CACHE_VARIABLE = "TORCHINDUCTOR_CACHE_DIR"
CAPABILITY_VARIABLE = "ATEN_CPU_CAPABILITY"


def default_folder() -> str:
    """PyTorch's own default for the cache: `torchinductor_<user>` in the temporary folder."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid_{os.getuid()}"
    return os.path.join(tempfile.gettempdir(), "torchinductor_" + re.sub(r'[\\/:*?"<>|]', "_", user))


def capability_folder(capability: str | None) -> str:
    """The cache folder of processes run with ATEN_CPU_CAPABILITY `capability` (None or empty: unset)."""
    name = re.sub(r"[^a-z0-9_]", "_", (capability or "").strip().lower()) or "unset"
    return os.path.join(default_folder(), f"riffd-capability-{name}")


def separate_by_capability(environ: MutableMapping[str, str]) -> str | None:
    """Point `environ`'s TORCHINDUCTOR_CACHE_DIR at this capability's folder where it is unset or one
    of these folders (inherited from a process that ran with another capability, as an emulating
    bench's re-executed self), and return that folder; None where someone else set it (it stays)."""
    current = environ.get(CACHE_VARIABLE)
    if current and not _capability_folder_of_ours(current):
        return None
    folder = capability_folder(environ.get(CAPABILITY_VARIABLE))
    environ[CACHE_VARIABLE] = folder
    return folder


def _capability_folder_of_ours(folder: str) -> bool:
    return (os.path.dirname(os.path.abspath(folder)) == os.path.abspath(default_folder())
            and os.path.basename(folder).startswith("riffd-capability-"))
