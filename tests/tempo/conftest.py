"""Fixtures for the tempo tests: the JACK server and captures of tests/playback, and a Link namespace."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "playback"))
