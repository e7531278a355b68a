"""`riffd jam`: start a jam on a running daemon, and steer, save or stop one from another shell.

    riffd jam start "dub techno" --play                 # on the daemon's sound card, until Ctrl-C
    riffd jam start "dub techno" -d 30 -o dub.wav       # 30 s to a file (for scripts)
    riffd jam set JAM --temperature 1.2 --prompt "dub techno, tabla"
    riffd jam prompts JAM "dub techno=0.7" "tabla=0.3"
    riffd jam snapshot JAM --name verse-2               # later: riffd jam start --resume verse-2 --play
    riffd jam stop JAM
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from clients.cli.common import add_connection_arguments, audio_output_path, check_writable, connect, exit_status
from clients.cli.tempo_options import add_tempo_arguments, tempo_options
from protocol.errors import RiffdError
from protocol.messages import Applied, Chunk, Done, Error, Snapshot, Started


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("jam", help="an endless stream you steer while it plays (daemon must be running)")
    commands = parser.add_subparsers(dest="jam_command", required=True, metavar="start|set|prompts|snapshot|stop")

    start = commands.add_parser("start", help="start a jam: play it on the daemon's sound card, or write it to a file")
    start.add_argument("prompt", nargs="?", default="", help="what the music should be (none with --resume)")
    start.add_argument("--play", action="store_true", help="play on the daemon's sound card")
    start.add_argument("--gain", type=float, help="linear gain on the daemon's sound card")
    start.add_argument("-d", "--duration", type=float, metavar="S", help="end after S seconds (default: until Ctrl-C)")
    start.add_argument("-o", "--output", type=audio_output_path, help="write the jam's audio here as it comes (.wav or .flac)")
    start.add_argument("--resume", metavar="NAME|PATH", help="continue a snapshot exactly where it was taken")
    start.add_argument("--seed", type=int)
    _sampling_flags(start)
    start.add_argument("--lead-s", type=float, metavar="S", help="how far ahead of its listener the jam may run")
    start.add_argument("--context-s", type=float, metavar="S", help="seconds each new window starts from")
    start.add_argument("--window-s", type=float, metavar="S", help="seconds a window runs before sliding on")
    start.add_argument("--model", "-m", help="model id (default: the daemon's)")
    start.add_argument("--job", help="the jam's id (default: picked here)")
    add_tempo_arguments(start, take=False)
    add_connection_arguments(start)
    start.set_defaults(run=lambda args: exit_status(lambda: _start(args)))

    change = commands.add_parser("set", help="change a running jam's prompt, sampling or gain")
    change.add_argument("jam", help="the jam's id")
    change.add_argument("--prompt")
    _sampling_flags(change)
    change.add_argument("--gain", type=float)
    add_connection_arguments(change)
    change.set_defaults(run=lambda args: exit_status(lambda: _control(args)))

    prompts = commands.add_parser("prompts", help="blend weighted prompts in a running jam")
    prompts.add_argument("jam", help="the jam's id")
    prompts.add_argument("prompts", nargs="+", metavar="TEXT[=WEIGHT]", help='e.g. "dub techno=0.7" "tabla=0.3"')
    add_connection_arguments(prompts)
    prompts.set_defaults(run=lambda args: exit_status(lambda: _control(args)))

    snapshot = commands.add_parser("snapshot", help="save a running jam's state under the daemon's --out/jams")
    snapshot.add_argument("jam", help="the jam's id")
    snapshot.add_argument("--name", help="the snapshot's name (default: JAM-OFFSET)")
    add_connection_arguments(snapshot)
    snapshot.set_defaults(run=lambda args: exit_status(lambda: _control(args)))

    stop = commands.add_parser("stop", help="fade a running jam out and end it")
    stop.add_argument("jam", help="the jam's id")
    add_connection_arguments(stop)
    stop.set_defaults(run=lambda args: exit_status(lambda: _control(args)))


def _sampling_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--temperature", type=float)
    parser.add_argument("--top-k", type=int)
    parser.add_argument("--top-p", type=float)
    parser.add_argument("--guidance-scale", type=float)


def _sampling(args: argparse.Namespace) -> dict:
    names = ("temperature", "top_k", "top_p", "guidance_scale")
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def parse_weighted(items: list[str]) -> list[tuple[str, float]]:
    """"TEXT=WEIGHT" (or TEXT, weight 1) pairs; a text may itself hold '=' before the last one."""
    pairs = []
    for item in items:
        text, sep, weight = item.rpartition("=")
        if not sep:
            pairs.append((item, 1.0))
            continue
        try:
            pairs.append((text, float(weight)))
        except ValueError:
            pairs.append((item, 1.0))  # "a=b" with no number after the last '=' is all text
    return pairs


def _control(args: argparse.Namespace) -> int:
    with connect(args) as client:
        if args.jam_command == "set":
            applied = client.jam_set(args.jam, prompt=args.prompt, gain=args.gain, **_sampling(args))
            print(f"{args.jam}: applied from {applied.offset_samples} samples")
        elif args.jam_command == "prompts":
            applied = client.jam_prompts(args.jam, parse_weighted(args.prompts))
            print(f"{args.jam}: applied from {applied.offset_samples} samples")
        elif args.jam_command == "snapshot":
            saved = client.jam_snapshot(args.jam, args.name)
            print(f"{saved.path} (from {saved.offset_samples} samples of {args.jam})")
        else:
            client.jam_stop(args.jam)
            print(f"{args.jam}: stopping (fading out)")
    return 0


def _start(args: argparse.Namespace) -> int:
    if not (args.play or args.output):
        raise RiffdError("nobody would hear this jam: give --play (the daemon's sound card) or -o FILE",
                         code="invalid_argument")
    check_writable(args.output)
    options: dict = dict(_sampling(args), play=args.play or None, gain=args.gain, seed=args.seed,
                         lead_s=args.lead_s, context_s=args.context_s, window_s=args.window_s,
                         duration_s=args.duration, resume=args.resume, job=args.job)
    options = {name: value for name, value in options.items() if value is not None} | tempo_options(args)
    with connect(args) as client:
        client.timeout_s = max(client.timeout_s or 0.0, 60.0)
        jam = client.jam(args.prompt, model=args.model, **options)
        writer = None
        seconds = 0.0
        try:
            for event in jam:
                if isinstance(event, Started):
                    # A jam resumed from a snapshot older than its seed has none to report.
                    seed = f" (seed {event.seed})" if event.seed is not None else ""
                    print(f"jam {event.job} on {event.model}{seed}; stop with Ctrl-C or "
                          f"`riffd jam stop {event.job}`", file=sys.stderr)
                    if args.output:
                        writer = _open_output(args.output, event.sample_rate, event.channels)
                elif isinstance(event, Chunk):
                    seconds = (event.offset_samples + event.frames) / event.sample_rate
                    if writer is not None:
                        writer.write(event.audio.T)
                    print(f"\r{seconds:8.1f} s", end="", file=sys.stderr, flush=True)
                elif isinstance(event, (Applied, Snapshot)):
                    print(f"\n{event.TYPE}: {event}", file=sys.stderr)
                elif isinstance(event, Error):
                    raise RiffdError(event.message, code=event.code)
                elif isinstance(event, Done):
                    print(file=sys.stderr)
                    if args.output:
                        print(f"{args.output} ({seconds:.2f} s, jam {event.job})")
                    return 0
        except KeyboardInterrupt:
            print("\nstopping (Ctrl-C again to leave at once)", file=sys.stderr)
            jam.stop()
            for event in jam:
                if isinstance(event, Chunk) and writer is not None:
                    writer.write(event.audio.T)
            return 0
        finally:
            if writer is not None:
                writer.close()
    raise RiffdError("the daemon ended the jam's stream without a result", code="protocol")


def _open_output(path: Path, sample_rate: int, channels: int):
    """A sound file written as the chunks come (a jam can be long: nothing is held in memory)."""
    import soundfile

    path.parent.mkdir(parents=True, exist_ok=True)
    return soundfile.SoundFile(str(path), "w", samplerate=sample_rate, channels=channels,
                               subtype="FLOAT" if path.suffix.lower() != ".flac" else "PCM_24")
