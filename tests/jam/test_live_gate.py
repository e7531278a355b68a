"""Live first: a render's steps wait while a jam is short of audio, and never for long."""

from __future__ import annotations

import threading
import time

from daemon.jam.gate import LiveGate


def test_a_render_waits_for_a_hungry_jam_until_it_has_caught_up() -> None:
    gate = LiveGate(max_wait_s=5.0)
    assert gate.wait_while_hungry() < 0.05  # no jam: no wait
    gate.hungry("jam-1", True)
    threading.Timer(0.2, gate.hungry, args=("jam-1", False)).start()
    waited = gate.wait_while_hungry()
    assert 0.15 < waited < 2.0 and not gate.any_hungry


def test_the_wait_is_bounded() -> None:
    gate = LiveGate(max_wait_s=0.1)
    gate.hungry("slow-jam", True)
    started = time.monotonic()
    gate.wait_while_hungry()
    assert time.monotonic() - started < 1.0 and gate.any_hungry
    gate.hungry("slow-jam", False)
    gate.hungry("never-hungry", False)  # saying "not hungry" for a jam never hungry is fine
    assert not gate.any_hungry
