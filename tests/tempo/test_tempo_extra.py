"""Without riffd's `tempo` extra (aalink, librosa, Rubber Band): clear errors naming the install,
jobs in time without conform still served; and the conform warm-up that keeps numba off live takes."""

from __future__ import annotations

import functools
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clients import Client
from daemon.server import app
from daemon.tempo import extra, service
from daemon.tempo.warmup import ConformWarmup
from daemon_harness import start_fake_daemon
from protocol.messages import Done, Error

REPO = Path(__file__).resolve().parents[2]


def test_conform_without_the_extra_is_refused_naming_the_install(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service, "conform_missing", lambda: ("pylibrb",))
    daemon = start_fake_daemon(tmp_path / "out")
    try:
        with Client(daemon.zmq, timeout_s=30) as client:
            error = list(client.generate("drums", 0.0, bars=1, bpm=97.0))[-1]
            assert isinstance(error, Error) and error.code == "unsupported", error
            assert "pip install 'riffd[tempo]'" in error.message and "pylibrb" in error.message
            assert "conform 0" in error.message
            # The refused request did not set the daemon's tempo; one without conform is served.
            assert client.clock().source == "none"
            done = list(client.generate("drums", 0.0, bars=1, bpm=97.0, conform=False))[-1]
            assert isinstance(done, Done) and done.bars == pytest.approx(1.0, abs=1e-4)
            # A jam in time too (it would conform as it plays).
            refused = list(client.jam("drums", bpm=97.0))[-1]
            assert isinstance(refused, Error) and refused.code == "unsupported", refused
            assert "pip install 'riffd[tempo]'" in refused.message
    finally:
        daemon.stop()


def test_link_without_the_extra_fails_at_start_naming_the_install(tmp_path: Path) -> None:
    # A site hook that hides aalink, as on a machine where the extra is not installed.
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text("import sys\nsys.modules['aalink'] = None\n")
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "daemon", "--link", "--osc-port", "0", "--zmq-port", "0",
                           "--out", str(tmp_path / "out")], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": f"{hide}:{REPO}", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 2, done.stderr
    assert "--link (Ableton Link) needs riffd's tempo extra (aalink not installed): pip install 'riffd[tempo]'" \
        in done.stderr and "[link_unavailable]" in done.stderr
    assert time.monotonic() - started < 60  # refused before any model loads


def test_missing_reports_what_cannot_be_found(monkeypatch: pytest.MonkeyPatch) -> None:
    assert extra.missing(("numpy", "riffd_no_such_module")) == ("riffd_no_such_module",)
    monkeypatch.setitem(sys.modules, "riffd_hidden", None)
    assert extra.missing(("riffd_hidden",)) == ("riffd_hidden",)


def test_after_the_warm_up_a_first_conform_costs_what_later_ones_do() -> None:
    """In a fresh process: the warm-up, then one conform timed against a second (no compile left);
    librosa and numba were never imported there (they run in the beat tracker's child process)."""
    script = (
        "import sys, time; sys.path.insert(0, 'tests/tempo')\n"
        "from drums import pattern\n"
        "from daemon.tempo.warmup import ConformWarmup\n"
        "w = ConformWarmup(); w.start(); assert w.wait(300) and w.error is None\n"
        "from daemon.tempo.conform import conform\n"
        "audio, _ = pattern(123.0, 4, 32000, swing=0.2, lead_in_s=0.3)\n"
        "times = []\n"
        "for _ in range(2):\n"
        "    t = time.process_time(); out = conform(audio, 32000, 120.0, 4); times.append(time.process_time() - t)\n"
        "    assert out.confident\n"
        "print(w.seconds, *times, int(bool({'librosa', 'numba'} & set(sys.modules))))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    warm_s, first_s, second_s, imported = map(float, done.stdout.split())
    assert imported == 0, "librosa or numba was imported in the daemon's process: its compiles would hold the GIL"
    print(f"\nconform warm-up {warm_s:.1f} s; then first conform {first_s:.2f} s CPU, second {second_s:.2f} s CPU")
    # CPU time, not wall time (the machine is shared): a compile left over would cost seconds.
    assert first_s < 2 * second_s + 0.3
    assert warm_s > first_s  # the warm-up did pay for something


def test_the_warm_up_runs_once() -> None:
    warmup = ConformWarmup()
    assert not warmup.wait(0)
    warmup.start()
    warmup.start()
    assert warmup.wait(300) and warmup.error is None and warmup.seconds is not None
    first = warmup.seconds
    warmup.start()
    assert warmup.wait(0) and warmup.seconds == first


@pytest.mark.parametrize("bpm,warm", [(120.0, None), (None, None), (None, True)])
def test_a_daemon_with_a_tempo_warms_conform_before_it_is_ready(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 bpm: float | None, warm: bool | None) -> None:
    warmup = ConformWarmup()
    monkeypatch.setattr(app, "TempoService", functools.partial(service.TempoService, warmup=warmup))
    daemon = start_fake_daemon(tmp_path / "out", bpm=bpm, warm_conform=warm)
    try:
        if warm:
            # `riffd serve` with the extra (and no RIFFD_WARM_CONFORM=0, which the suite sets): warmed
            # from the start, beside serving, so the first request in time finds it done.
            assert warmup.started
            assert warmup.wait(300) and warmup.error is None
        elif bpm is None:
            # No tempo at start: no warm-up until a request in time comes, which starts it.
            assert not warmup.started
            with Client(daemon.zmq, timeout_s=60) as client:
                list(client.generate("x", 0.0, bars=1, bpm=100.0, conform=False))
                assert not warmup.started  # nothing to conform
                list(client.generate("x", 0.0, bars=1, bpm=100.0))
            assert warmup.started
        else:
            assert warmup.wait(0) and warmup.error is None  # done before the daemon said it was ready
    finally:
        daemon.stop()
