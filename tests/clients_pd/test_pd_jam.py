"""riffd-jam.pd for real: `pd -nogui` jams against a real daemon (debug/musicgen, 1 s windows): start,
a set, weighted prompts from slots and a weight, a snapshot, stop; what its outlets played is checked
against the chunk files the daemon wrote."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from daemon_harness import DaemonThread, make_config
from test_pd import PD_RATE, _log, run_pd

pytestmark = pytest.mark.skipif(shutil.which("pd") is None, reason="Pure Data (puredata-core) not installed")


@pytest.fixture(scope="module")
def pd_jam_daemon(tmp_path_factory: pytest.TempPathFactory, riffd_cache: Path) -> Iterator[DaemonThread]:
    config = make_config(tmp_path_factory.mktemp("pd-jam-out"), models=("debug/musicgen",), cache_dir=riffd_cache,
                         jam_lead_s=0.5, jam_window_s=1.0, jam_context_s=0.3)
    daemon = DaemonThread(config).start()
    yield daemon
    daemon.stop()


def test_pd_jams_steers_saves_and_plays_it_gaplessly(pd_jam_daemon: DaemonThread, tmp_path: Path) -> None:
    log, played = tmp_path / "log.txt", tmp_path / "played.wav"
    console = run_pd("riffd-jam-test.pd", f"riffd-jam-test {pd_jam_daemon.osc_port} {log} {played}", timeout_s=60)
    events = [event for event in _log(log) if event[0] != "connected"]
    assert ["timeout"] not in events, (events, console)
    assert "error" not in console, console
    kinds = [event[0] for event in events]
    assert kinds[:2] == ["accepted", "started"] and events[0][1] == "pdjam", events
    # One set, two prompt slots and one weight: four changes, each applied after the one before.
    applied = [int(event[2]) for event in events if event[0] == "applied"]
    assert len(applied) == 4 and applied == sorted(applied), events
    snapshot = next(event for event in events if event[0] == "snapshot")
    assert snapshot[1] == "pdjam" and Path(snapshot[2]).is_file() and snapshot[2].endswith("pdsnap.riffdjam")
    done = next(event for event in events if event[0] == "done")
    assert kinds[-1] == "ended" and kinds.index("done") < kinds.index("ended")
    chunks = [event for event in events if event[0] == "chunk"]
    offsets = [int(event[4]) for event in chunks]
    frames = [int(event[5]) for event in chunks]
    assert offsets == [sum(frames[:i]) for i in range(len(frames))], "contiguous chunks"
    assert int(done[-2]) == sum(frames) and sum(frames) > 2 * 32000  # past two slides

    # What the outlets played: the chunks in order at Pd's rate, seamless, and nothing after the end.
    audio = np.concatenate([sf.read(event[3], dtype="float32")[0] for event in chunks])
    both, rate = sf.read(played, dtype="float32")
    assert rate == PD_RATE
    np.testing.assert_array_equal(both[:, 0], both[:, 1])  # a mono jam on both outlets
    out = both[:, 0]
    reference = np.interp(np.arange(round(len(audio) * PD_RATE / 32000)) * 32000 / PD_RATE, np.arange(len(audio)),
                          audio)
    # Aligned on its first half second, then every half second in order (Pd's phasor~ runs a few ppm off
    # the daemon's clock: a sample or so a second, which a local search absorbs).
    segment = PD_RATE // 2

    def similarity(at: int, start: int) -> float:
        a, b = out[at:at + segment], reference[start:start + segment]
        return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))

    lag = max(range(0, len(out) - len(reference)), key=lambda at: similarity(at, 0))
    assert similarity(lag, 0) > 0.95
    for start in range(0, len(reference) - segment, segment):
        drift = max(range(-40, 41), key=lambda d: similarity(lag + start + d, start))
        assert abs(drift) <= 20 and similarity(lag + start + drift, start) > 0.95, (start, drift)
    end = lag + len(reference)
    assert np.abs(out[end - segment:end - 2000]).max() > 0, "it played to the end"
    assert np.abs(out[end + 2000:]).max(initial=0.0) < 1e-6, "and stopped there: nothing stale from the ring"
