"""daemon/native/compile.py: sources compiled at once, objects in the sources' order, failures named."""

from __future__ import annotations

import shutil
import stat
import time
from pathlib import Path

import pytest

from daemon.native import compile as native_compile
from daemon.native.compile import CompileFailed, compile_objects

# A stand-in compiler: it marks that it started, then waits (up to 10 s) until every compiler of the
# build has started before it writes its object, so it succeeds only if they all run at once.
OVERLAPPING_CC = """#!/bin/sh
while [ "$1" != "-o" ]; do shift; done
object="$2"
touch "$object.started"
for _ in $(seq 200); do
    [ "$(ls "$(dirname "$object")"/*.started | wc -l)" -ge {count} ] && {{ echo built > "$object"; exit 0; }}
    sleep 0.05
done
echo "compiled alone: $object" >&2
exit 1
"""


def _script(folder: Path, text: str) -> str:
    path = folder / "cc"
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_sources_compile_at_once_and_their_objects_come_back_in_the_sources_order(tmp_path, monkeypatch):
    monkeypatch.setattr(native_compile, "build_jobs", lambda: 3)
    sources = []
    for name, size in (("small.c", 10), ("large.c", 3000), ("middle.c", 500)):
        sources.append(tmp_path / name)
        sources[-1].write_text(" " * size)
    compiler = _script(tmp_path, OVERLAPPING_CC.format(count=3))
    out = tmp_path / "objects"
    out.mkdir()
    objects = compile_objects(compiler, ["-O3"], sources, out, timeout_s=60)
    assert objects == [out / "small.o", out / "large.o", out / "middle.o"]
    assert all(path.read_text() == "built\n" for path in objects)


def test_with_one_core_each_source_still_compiles(tmp_path, monkeypatch):
    monkeypatch.setattr(native_compile, "build_jobs", lambda: 1)
    sources = [tmp_path / "a.c", tmp_path / "b.c"]
    for source in sources:
        source.write_text("")
    # Every compiler waits only for itself: one at a time must not dead-lock.
    compiler = _script(tmp_path, OVERLAPPING_CC.format(count=1))
    objects = compile_objects(compiler, [], sources, tmp_path, timeout_s=60)
    assert [path.read_text() for path in objects] == ["built\n", "built\n"]


@pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler")
def test_a_source_that_does_not_compile_is_named_with_the_compilers_message(tmp_path):
    good, bad = tmp_path / "good.c", tmp_path / "bad.c"
    good.write_text("int riffd_good(void) { return 1; }\n")
    bad.write_text("int riffd_bad(void) { return undeclared_name; }\n")
    with pytest.raises(CompileFailed, match=r"(?s)bad\.c.*undeclared_name"):
        compile_objects("cc", ["-O1"], [good, bad], tmp_path, timeout_s=60)


def test_a_compiler_past_the_builds_time_is_stopped_and_said(tmp_path):
    source = tmp_path / "slow.c"
    source.write_text("")
    # The stand-in's child holds the output pipes, as cc1 does a compiler's: it must go as well.
    compiler = _script(tmp_path, "#!/bin/sh\nsleep 30\n")
    started = time.monotonic()
    with pytest.raises(CompileFailed, match="took over 1 s"):
        compile_objects(compiler, [], [source], tmp_path, timeout_s=1)
    assert time.monotonic() - started < 15


def test_two_sources_of_one_name_are_refused(tmp_path):
    (tmp_path / "x").mkdir()
    with pytest.raises(ValueError, match="share a name"):
        compile_objects("cc", [], [tmp_path / "k.c", tmp_path / "x" / "k.c"], tmp_path, timeout_s=60)


def test_a_library_build_that_fails_leaves_nothing_in_the_cache_folder(tmp_path):
    """daemon.native's build: objects and the partial library live in a folder of their own, gone after."""
    import daemon.native

    cache = tmp_path / "cache"
    failing = _script(tmp_path, "#!/bin/sh\necho 'cc1: out of memory' >&2\nexit 1\n")
    with pytest.raises(daemon.native.NativeUnavailable, match=r"(?s)could not build riffd.s native kernels.*out of memory"):
        daemon.native._build(failing, sorted(daemon.native.SOURCE_DIR.glob("*.c")), cache / "libriffd-test.so")
    assert list(cache.iterdir()) == []
