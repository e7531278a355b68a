"""Benchmark: a long jam through a real daemon over ZeroMQ, as a performer's client sees it.

Defaults: random/musicgen-small, engine int8 (the fastest CPU mode; `--engine auto` where the
daemon has it), 120 s of jam with the daemon's jam settings (lead 1 s, 4 s of context, the
model's 30 s window: slides at 30, 56, 82 and 108 s), a change every 15 s (temperature,
weighted prompts, a new prompt, top-k, in turn: 7 changes). The client plays what it receives in
real time (a virtual player that starts `--buffer-s` after the first chunk) and measures:

- worst_gap_s: the longest wait between two chunk deliveries (across the slides), and chunk_s;
- underruns: times the virtual player found no audio when it needed it;
- change_latency_s (median, max): a change's request sent -> the first chunk delivered that holds
  its applied sample (`applied` event);
- rss_growth_mb: the process's memory at the end minus after the first slide (a jam must not grow);
- rtf: seconds of jam audio generated per wall second when the jam is not held back (a second,
  unpaced jam: lead 30 s, 20 s of audio), and rtf_vs_take, its ratio to a plain take of the same
  length on the same engine (the baseline, same run): what the jam's slides and changes cost.
  SIGTERM (a `timeout` around it) prints what was measured so far ("complete": false).

Prints a table, then one JSON object as the last line. The daemon runs in this process (its
memory is this process's).

    python -m bench.jam [--model random/musicgen-small] [--engine int8] [--seconds 120]
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from clients import Client  # noqa: E402
from daemon.embedded import start_on_loopback  # noqa: E402
from protocol.messages import Chunk, Done, Error  # noqa: E402

PROMPT = "deep dub techno, warm chords, 120 bpm"


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_description() -> str:
    """The CPU's name and the instruction sets riffd's kernels choose between (figures are per CPU class)."""
    import os

    from daemon.native.branches import cpu_flags, cpu_name

    flags = cpu_flags()
    sets = [flag for flag in ("avx512_vnni", "avx_vnni", "avx512_bf16", "avx2") if flag in flags]
    return f"{cpu_name()} ({', '.join(sets) or 'no AVX2'}; {os.cpu_count()} cores)"


@dataclass
class Listener:
    """What the client saw: chunk arrivals (read as they come), the changes it sent and where they applied."""

    buffer_s: float
    rate: int = 0
    arrivals: list[tuple[float, int, int]] = field(default_factory=list)  # (time, offset, frames)
    changes: list[tuple[float, int]] = field(default_factory=list)  # (sent at, applied sample)
    rss_after_slide: float | None = None
    rss_end: float = 0.0

    def latencies(self) -> list[float]:
        """Each change: sent -> the first chunk delivered that holds its applied sample."""
        out = []
        for sent, sample in self.changes:
            arrival = next((t for t, offset, frames in self.arrivals if offset + frames > sample), None)
            if arrival is not None:
                out.append(arrival - sent)
        return out

    def worst_gap_s(self) -> float:
        times = [t for t, _, _ in self.arrivals]
        return max((b - a for a, b in zip(times[1:], times[2:])), default=0.0)  # after the first chunk

    def underruns(self) -> int:
        """A player starting buffer_s after the first chunk, playing in real time: chunks late for it."""
        if not self.arrivals:
            return 0
        start = self.arrivals[0][0] + self.buffer_s
        late = 0
        for arrived, offset, _ in self.arrivals:
            if arrived > start + offset / self.rate:
                late += 1
                start = arrived - offset / self.rate  # it re-buffers and goes on from there
        return late


CHANGES = (
    lambda client, jam: client.jam_set(jam, temperature=1.15),
    lambda client, jam: client.jam_prompts(jam, {PROMPT: 0.7, "tabla and hand percussion": 0.3}),
    lambda client, jam: client.jam_set(jam, prompt="ambient pads, slow evolving, no drums"),
    lambda client, jam: client.jam_set(jam, top_k=100, temperature=1.0),
    lambda client, jam: client.jam_prompts(jam, {"ambient pads": 0.5, "dub techno bass": 0.5}),
    lambda client, jam: client.jam_set(jam, prompt=PROMPT),
    lambda client, jam: client.jam_set(jam, guidance_scale=4.0),
)


def _reached(audio_s: list[float], due: float) -> bool:
    """The jam's audio got to `due` seconds, or it ended (-1)."""
    return audio_s[0] >= due or audio_s[0] < 0


def paced_jam(endpoint: str, seconds: float, every_s: float, slide_s: float, listener: Listener) -> None:
    """The jam read on this thread as its chunks come (into `listener`); changes sent from another
    thread with its own socket (so a change's round trip never delays reading a chunk)."""
    audio_s = [0.0]
    progressed = threading.Condition()

    def steer(jam: str) -> None:
        with Client(endpoint, timeout_s=120) as client:
            for made, change in enumerate(CHANGES):
                due = every_s * (made + 1)
                if due > seconds - 3:
                    return
                with progressed:
                    progressed.wait_for(partial(_reached, audio_s, due), timeout=seconds * 3)
                if audio_s[0] < 0:
                    return
                sent = time.perf_counter()
                applied = change(client, jam)
                listener.changes.append((sent, applied.offset_samples))

    with Client(endpoint, timeout_s=120) as client:
        jam = client.jam(PROMPT, seed=1, duration_s=seconds)
        steering = threading.Thread(target=steer, args=(jam.jam,), daemon=True)
        steering.start()
        try:
            for event in jam:
                now = time.perf_counter()
                if isinstance(event, Chunk):
                    listener.rate = event.sample_rate
                    listener.arrivals.append((now, event.offset_samples, event.frames))
                    with progressed:
                        audio_s[0] = (event.offset_samples + event.frames) / event.sample_rate
                        progressed.notify_all()
                    if listener.rss_after_slide is None and audio_s[0] > slide_s + 2:
                        listener.rss_after_slide = rss_mb()
                    if int(audio_s[0]) // 10 != int(audio_s[0] - event.frames / event.sample_rate) // 10:
                        print(f"  paced jam: {audio_s[0]:.0f} s of {seconds:.0f}", file=sys.stderr, flush=True)
                elif isinstance(event, Error):
                    raise SystemExit(f"jam failed: {event.code}: {event.message}")
                elif isinstance(event, Done):
                    break
        finally:
            with progressed:
                audio_s[0] = -1.0
                progressed.notify_all()
            steering.join()
    listener.rss_end = rss_mb()


def unpaced_rtf(endpoint: str, seconds: float) -> tuple[float, float]:
    """(jam rtf, take rtf): audio seconds per wall second, each from its first chunk to its last."""
    results = []
    with Client(endpoint, timeout_s=300) as client:
        for start in (lambda: client.jam(PROMPT, seed=2, duration_s=seconds, lead_s=30.0),
                      lambda: client.generate(PROMPT, duration_s=seconds, seed=2)):
            stream = start()  # one after the other: the take must not share the CPU with the jam
            first = last = None
            frames = rate = 0
            for event in stream:
                if isinstance(event, Chunk):
                    now = time.perf_counter()
                    first = first or (now, event.offset_samples + event.frames)
                    last, frames, rate = now, event.offset_samples + event.frames, event.sample_rate
                elif isinstance(event, (Done, Error)):
                    break
            assert first is not None and last is not None
            results.append(((frames - first[1]) / rate) / (last - first[0]))
    return results[0], results[1]


class Stopped(Exception):
    """SIGTERM (a `timeout` around the run): report what was measured so far."""


def _stop(signum: int, frame: object) -> None:
    raise Stopped()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="random/musicgen-small")
    parser.add_argument("--engine", default="int8")
    parser.add_argument("--seconds", type=float, default=120.0, help="seconds of paced jam (default 120)")
    parser.add_argument("--change-every-s", type=float, default=15.0)
    parser.add_argument("--lead-s", type=float, default=1.0, help="the daemon's --jam-lead-s")
    parser.add_argument("--context-s", type=float, default=4.0, help="the daemon's --jam-context-s")
    parser.add_argument("--window-s", type=float, default=None, help="the daemon's --jam-window-s (the model's)")
    parser.add_argument("--buffer-s", type=float, default=0.5, help="the virtual player's jitter buffer")
    parser.add_argument("--rtf-seconds", type=float, default=20.0, help="audio of the unpaced rtf runs (default 20)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    signal.signal(signal.SIGTERM, _stop)
    settings = dict(engine=args.engine, jam_lead_s=args.lead_s, jam_context_s=args.context_s, max_duration_s=600.0)
    if args.window_s:
        settings["jam_window_s"] = args.window_s
    window_s = args.window_s or 30.0
    listener = Listener(args.buffer_s)
    rtf = take_rtf = None
    stopped = False
    with tempfile.TemporaryDirectory(prefix="riffd-bench-jam-") as out:
        started = time.perf_counter()
        daemon = start_on_loopback((args.model,), Path(out), **settings)
        load_s = time.perf_counter() - started
        try:
            # The paced jam first: it is what a performer hears; the unpaced rates after it.
            paced_jam(daemon.zmq, args.seconds, args.change_every_s, window_s, listener)
            rtf, take_rtf = unpaced_rtf(daemon.zmq, args.rtf_seconds)
        except Stopped:
            stopped = True
            print("stopped (SIGTERM): reporting what was measured", file=sys.stderr)
        finally:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            daemon.stop()
    rate = listener.rate or 1
    audio_s = sum(frames for _, _, frames in listener.arrivals) / rate
    slides = max(0, int((audio_s - window_s) // (window_s - args.context_s)) + 1) if audio_s >= window_s else 0
    chunk_s = statistics.median(frames for _, _, frames in listener.arrivals[1:]) / rate if listener.arrivals else 0
    latencies = listener.latencies()
    result = {
        "model": args.model, "engine": args.engine, "cpu": cpu_description(), "seconds": round(audio_s, 2),
        "lead_s": args.lead_s, "context_s": args.context_s, "window_s": window_s, "slides": slides,
        "changes": len(listener.changes),
        "rtf": None if rtf is None else round(rtf, 3), "take_rtf": None if take_rtf is None else round(take_rtf, 3),
        "rtf_vs_take": None if rtf is None or take_rtf is None else round(rtf / take_rtf, 3),
        "worst_gap_s": round(listener.worst_gap_s(), 3), "chunk_s": round(chunk_s, 3),
        "change_latency_s_median": round(statistics.median(latencies), 3) if latencies else None,
        "change_latency_s_max": round(max(latencies), 3) if latencies else None,
        "underruns": listener.underruns(),
        "rss_growth_mb": (round(listener.rss_end - listener.rss_after_slide, 1)
                          if listener.rss_after_slide is not None and listener.rss_end else None),
        "load_s": round(load_s, 1), "complete": not stopped,
    }
    width = max(len(key) for key in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
