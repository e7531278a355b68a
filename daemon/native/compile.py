"""C sources compiled to object files, several compilers at once.

One `cc a.c b.c ... -o lib.so` compiles its files one after another: ~10 s for riffd's kernels at
-O3 on a 2-core Xeon, of which attention.c alone takes ~3.6 s. With a compiler per core the build
takes about its longest file, or the sum over the cores where that is more: ~5 s there, the first
start of a daemon on a new machine and every build the tests make for another branch.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


class CompileFailed(RuntimeError):
    """A source did not compile (or not within the time allowed); the message names the command."""


def build_jobs() -> int:
    """How many compilers to run at once: the cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def compile_objects(compiler: str, compile_flags: Sequence[str], sources: Sequence[Path], folder: Path,
                    timeout_s: float) -> list[Path]:
    """Each source compiled (`-c`) to `folder/STEM.o` with `compile_flags`, `build_jobs()` at a time.

    Returns the objects in the order of `sources` (a link line then does not depend on the timing).
    Raises CompileFailed with the compiler's message for the first source that failed, or when the
    whole build took over `timeout_s`.
    """
    deadline = time.monotonic() + timeout_s
    objects = [folder / f"{source.stem}.o" for source in sources]
    if len(set(objects)) != len(objects):
        raise ValueError("two sources share a name: their objects would overwrite each other")

    def compile_one(index: int) -> str | None:
        command = [compiler, *compile_flags, "-c", str(sources[index]), "-o", str(objects[index])]
        # Its own process group: on a timeout the compiler's children (cc1, as) go too, and the pipes
        # they hold close, so the build does not wait for them.
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              start_new_session=True) as process:
            try:
                _, stderr = process.communicate(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.communicate()
                return f"{compiler} took over {timeout_s:.0f} s: {' '.join(command)}"
        if process.returncode != 0:
            return f"{' '.join(command)}\n{stderr.strip()[-2000:]}"
        return None

    # The largest sources first: the longest compiles then overlap the short ones instead of
    # starting last and leaving the other cores idle at the end.
    order = sorted(range(len(sources)), key=lambda index: sources[index].stat().st_size, reverse=True)
    with ThreadPoolExecutor(max_workers=min(build_jobs(), max(1, len(sources)))) as pool:
        failures = [failure for failure in pool.map(compile_one, order) if failure is not None]
    if failures:
        raise CompileFailed(failures[0])
    return objects
