"""A second Ableton Link peer for the tests, "the DAW": aalink, and optionally a JACK client that
plays a click on every bar of its own Link timeline, placed with JACK's own latency figures.

Run inside the test's network namespace: `python daw_peer.py BPM [--jack PORT]`. It reads
commands on stdin, one per line, and answers each with one JSON line on stdout:
`state` -> {"tempo", "beat", "time_s", "peers", "tempo_changes"}; `tempo BPM` -> the same after
setting the session tempo; `quit`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
import sys
import threading
import time

CLICK_FRAMES = 48  # 1 ms at 48 kHz: a sharp edge to find in the capture


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("bpm", type=float)
    parser.add_argument("--jack", metavar="PORT", help="play a click on every bar into this JACK input port")
    parser.add_argument("--quantum", type=int, default=4)
    args = parser.parse_args()
    asyncio.run(run(args))


async def run(args: argparse.Namespace) -> None:
    from aalink import Link

    loop = asyncio.get_running_loop()
    link = Link(args.bpm, loop)
    link.quantum = args.quantum
    changes: list[float] = []
    link.set_tempo_callback(changes.append)
    link.enabled = True
    clicker = Clicker(link, args.jack, args.quantum) if args.jack else None
    print(json.dumps({"ready": True}), flush=True)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = (await reader.readline()).decode().strip()
        if not line or line == "quit":
            break
        words = line.split()
        if words[0] == "tempo":
            link.tempo = float(words[1])
        state = {"tempo": link.tempo, "beat": link.beat, "time_s": link.time.total_seconds(),
                 "peers": link.num_peers, "tempo_changes": list(changes), "set_at_s": time.clock_gettime(
                     time.CLOCK_MONOTONIC_RAW)}
        print(json.dumps(state), flush=True)
    if clicker is not None:
        clicker.close()
    link.enabled = False


class Clicker:
    """A JACK client writing a click whose first frame reaches the speakers on each bar."""

    def __init__(self, link: object, port: str, quantum: int) -> None:
        import jack

        self._link = link
        self._quantum = quantum
        self._lock = threading.Lock()
        self._latency_frames = playback_latency_frames(port)
        self._client = jack.Client("daw-peer", no_start_server=True)
        self._out = self._client.outports.register("click")
        self._client.set_process_callback(self._process)
        self._rate = self._client.samplerate
        self._client.activate()
        self._out.connect(port)

    def _process(self, frames: int) -> None:
        buffer = self._out.get_array()
        buffer.fill(0.0)
        # When this cycle's first frame reaches the speakers, on Link's clock: now, less the time
        # since the cycle began (JACK's count), plus the playback latency JACK reports.
        link_s = self._link.time.total_seconds()  # type: ignore[attr-defined]
        at_s = link_s - self._client.frames_since_cycle_start / self._rate + self._latency_frames / self._rate
        beat_now = self._link.beat  # type: ignore[attr-defined]
        tempo = self._link.tempo  # type: ignore[attr-defined]
        beat_at = beat_now + (at_s - link_s) * tempo / 60.0
        beat_s = 60.0 / tempo
        bar = (beat_at // self._quantum + 1) * self._quantum
        while True:
            offset = int(round((bar - beat_at) * beat_s * self._rate))
            if offset >= frames:
                break
            if offset + CLICK_FRAMES > 0:
                lo, hi = max(0, offset), min(frames, offset + CLICK_FRAMES)
                buffer[lo:hi] = 0.9
            bar += self._quantum
        # A click straddling the cycle's start (begun in the last cycle) is finished here.
        previous = ((beat_at // self._quantum) * self._quantum - beat_at) * beat_s * self._rate
        if -CLICK_FRAMES < previous < 0:
            buffer[: int(CLICK_FRAMES + previous)] = 0.9

    def close(self) -> None:
        self._client.deactivate()
        self._client.close()


def playback_latency_frames(port: str) -> int:
    """The playback latency JACK reports for `port` (the most of its range), read with jack_lsp
    (the JACK-Client binding does not wrap jack_port_get_latency_range)."""
    listing = subprocess.run(["jack_lsp", "-l", port], capture_output=True, text=True, timeout=10).stdout
    found = re.search(r"port playback latency = \[ (\d+) (\d+) \]", listing)
    if found is None:
        raise RuntimeError(f"no playback latency for {port} in: {listing!r}")
    return int(found.group(2))


if __name__ == "__main__":
    main()
