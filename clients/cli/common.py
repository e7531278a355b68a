"""What the client subcommands share: the daemon's address, request options, a progress display."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from typing import Protocol
from pathlib import Path

from clients.client import DEFAULT_ENDPOINT, Client, raise_for
from clients.joining import ChunkJoiner
from protocol.errors import OutputError, RiffdError
from clients.cli.options import add_generation_options, generation_params
from protocol.messages import OUTPUT_FORMATS, SAMPLING_FIELDS, Accepted, Done, Error, Event, Progress, Started


#: (job, chunk blocks `[channels, frames]`, sample rate, -o path) -> exit status; writes and reports the file.
Writer = Callable[[str, list, int, Path | None], int]


#: What a client's timeout most often means.
DAEMON_SILENT_HINT = "is the daemon running there, and does it want CurveZMQ keys?"


def exit_status(run: Callable[[], int]) -> int:
    """`run()`'s exit status; a RiffdError, a timeout or a file error becomes one line on stderr and status 2."""
    try:
        return run()
    except RiffdError as exc:
        print(f"error: {exc.message} [{exc.code}]", file=sys.stderr)
        return 2
    except TimeoutError as exc:
        print(f"error: {exc} ({DAEMON_SILENT_HINT})", file=sys.stderr)
        return 2
    except OSError as exc:
        error = file_error(exc)
        print(f"error: {error.message} [{error.code}]", file=sys.stderr)
        return 2


def file_error(exc: OSError) -> OutputError:
    """An OSError that reached a command's top as the error it is: a file or folder the command could
    not write (its output, a label track, key files, the daemon's --out). Every input a user names is
    read by a reader that says what is wrong with it under its own code (bad_audio for audio,
    invalid_argument for the lyrics file, config and key files), so what is left is output_error, the
    code the daemon gives a file it cannot write."""
    # os.replace(temporary, final) names both: the final name is the user's.
    path = exc.filename2 if exc.filename2 is not None else exc.filename
    if path is None:
        return OutputError(f"cannot write: {exc}")
    name = os.fsdecode(path) if isinstance(path, bytes) else str(path)
    return OutputError(f"cannot write {name}: {exc.strerror or exc}")


def positive_seconds(text: str) -> float:
    """An argparse type: seconds greater than 0 (a timeout of 0 or less would give up at once)."""
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not seconds > 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0, got {text}")
    return seconds


def audio_output_path(text: str) -> Path:
    """An argparse type: a file the client can write audio to, refused before a job runs rather than after."""
    path = Path(text)
    if path.suffix.lower().lstrip(".") not in OUTPUT_FORMATS:
        raise argparse.ArgumentTypeError(f"{text} must end in {' or '.join('.' + f for f in OUTPUT_FORMATS)}")
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder; give a file name")
    return path


#: Where a take goes without -o: its job id (known only once the daemon accepts it), in the current folder.
DEFAULT_OUTPUT = Path("JOB.wav")


def check_writable(*paths: Path | None) -> None:
    """Refuse now, as OutputError, any of `paths` that could not be written after the job (a folder
    that cannot be made or takes no new files, a file where a folder should be), so a producer does
    not wait for a whole take to learn it; None (an output not asked for) is skipped.

    It makes the folder, as the writers would, and creates a file in it (removed at once). The final
    write can still fail (a disk that fills meanwhile)."""
    for path in paths:
        if path is None:
            continue
        folder = path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except FileExistsError:  # exist_ok covers a folder only
            raise OutputError(f"cannot write {path}: {folder} is a file, not a folder") from None
        except OSError as exc:
            raise OutputError(f"cannot write {path}: cannot make the folder {folder}: {exc.strerror or exc}") from None
        try:
            handle, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=folder)
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
        os.close(handle)
        os.unlink(probe)


def zmq_endpoint(text: str) -> str:
    """An argparse type: a ZeroMQ endpoint a client can connect to (libzmq's own error says only 'Invalid argument')."""
    transport, sep, address = text.partition("://")
    if not sep or transport not in ("tcp", "ipc") or not address:
        raise argparse.ArgumentTypeError(f"{text!r} is not an endpoint: give tcp://HOST:PORT (or ipc://PATH)")
    return text


def absolute_path(path: str) -> str:
    """`path` for the daemon: it refuses relative paths, which would name files from its own working folder."""
    return str(Path(path).expanduser().resolve())


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--endpoint", type=zmq_endpoint, default=DEFAULT_ENDPOINT,
                        help=f"the daemon's ZeroMQ request endpoint (default {DEFAULT_ENDPOINT})")
    parser.add_argument("--timeout", type=positive_seconds, default=120.0, metavar="S",
                        help="give up when the daemon is silent this long (default 120 s)")
    parser.add_argument("--curve-secret-key", type=Path, metavar="FILE",
                        help="this client's CurveZMQ .key_secret file (for a daemon that requires CurveZMQ)")
    parser.add_argument("--curve-server-key", type=Path, metavar="FILE", help="the daemon's public .key file")


def connect(args: argparse.Namespace) -> Client:
    """A Client for the connection flags (with CurveZMQ keys when given)."""
    from clients.curve import CurveClientKeys

    curve = None
    if args.curve_secret_key or args.curve_server_key:
        if not (args.curve_secret_key and args.curve_server_key):
            raise RiffdError("CurveZMQ needs both --curve-secret-key and --curve-server-key", code="invalid_argument")
        curve = CurveClientKeys.load(args.curve_secret_key, args.curve_server_key)
    return Client(args.endpoint, timeout_s=args.timeout, curve=curve)


def add_job_arguments(parser: argparse.ArgumentParser) -> None:
    """Output, model, priority and the generation controls `riffd render` has too."""
    add_generation_options(parser)
    parser.add_argument("-o", "--output", type=audio_output_path,
                        help="write the audio here (.wav or .flac; default JOB.wav)")
    parser.add_argument("--model", "-m", help="model id (default: the daemon's)")
    parser.add_argument("--job", help="job id (default: the daemon picks one)")
    parser.add_argument("--priority", type=int, default=0, help="higher runs first (default 0)")
    add_connection_arguments(parser)


def job_options(args: argparse.Namespace) -> dict:
    """Request fields from the flags (duration_s is passed on its own)."""
    params = generation_params(args)
    options = {name: getattr(params, name) for name in SAMPLING_FIELDS}
    options = {name: value for name, value in options.items() if value is not None}
    if args.job:
        options["job"] = args.job
    if args.model:
        options["model"] = args.model
    options["priority"] = args.priority
    return options


class EventStream(Protocol):
    """A job's events as they come (a JobStream, or something passing one's events on)."""

    @property
    def job(self) -> str | None: ...

    def __iter__(self) -> Iterator[Event]: ...

    def cancel(self) -> None: ...


def run_job(client: Client, stream: EventStream, output: Path | None, *, write: Writer | None = None) -> int:
    """Show progress, write the audio (with `write` when given), print where it went; raise RiffdError if the job fails."""
    from rich.progress import BarColumn, Progress as Bar, TextColumn, TimeElapsedColumn

    joiner = ChunkJoiner()
    seed_shown: int | None = None
    with Bar(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
             TimeElapsedColumn(), transient=True, console=_console()) as bar:
        task = bar.add_task("sending", total=None)
        try:
            for event in stream:
                if joiner.add(event):  # a saved job the daemon resumed after a restart: its audio comes again
                    bar.console.print(f"{stream.job or 'job'}: the daemon restarted; the job starts over")
                if isinstance(event, Accepted):
                    ahead = f", {event.queue_position} ahead" if event.queue_position else ""
                    bar.update(task, description=f"{event.job}: queued{ahead}")
                elif isinstance(event, Started):
                    bar.update(task, description=f"{event.job}: generating on {event.model}")
                    line = _seed_line(event, seed_shown)
                    if line is not None:
                        bar.console.print(line)
                        seed_shown = event.seed
                elif isinstance(event, Progress):
                    bar.update(task, total=event.total, completed=event.done)
                elif isinstance(event, Error):
                    raise_for(event)
                elif isinstance(event, Done):
                    return (write or _write)(stream.job or event.job, joiner.blocks,
                                             event.sample_rate or joiner.sample_rate, output)
        except KeyboardInterrupt:
            stream.cancel()
            raise
    raise RiffdError("the daemon ended the stream without a result", code="protocol")


def _seed_line(started: Started, shown: int | None) -> str | None:
    """What to print of a started event's seed, the take's recipe (--seed N with the same flags plays it
    again): once per job. A job a restarted daemon resumed starts again with the seed it had (journaled
    when it first started), so its second started says nothing new; were the seed another, the one
    shown first would no longer replay the take, and that is said."""
    if started.seed is None or started.seed == shown:
        return None
    if shown is None:
        return f"{started.job}: seed {started.seed}"
    return f"{started.job}: seed {started.seed} (the restarted daemon's; seed {shown} no longer replays this take)"


def _write(job: str, blocks: list, sample_rate: int, output: Path | None) -> int:
    import numpy as np

    from daemon.audio.io import write_audio

    if not blocks:
        raise RiffdError("the job produced no audio", code="protocol")
    audio = np.concatenate(blocks, axis=1)
    path = write_audio(output or Path(f"{job}.wav"), audio, sample_rate)
    print(f"{path} ({audio.shape[1] / sample_rate:.2f} s, {sample_rate} Hz, {audio.shape[0]} ch, job {job})")
    return 0


def _console():
    from rich.console import Console

    return Console(file=sys.stderr)
