"""`riffd jukebox sample|upsample`: Jukebox jobs on a running daemon, the upsampled audio to a file.

    riffd jukebox sample --duration 20 --artist "Alan Jackson" --genres Country --lyrics-file song.txt -o take.wav
    riffd jukebox sample --duration 20 --sketch --save --job sketch1      # top level only, codes kept
    riffd jukebox upsample sketch1 -o full.wav                              # an earlier saved job's codes
    riffd jukebox sample --duration 20 --lyrics-file song.txt --lyric-labels words.txt   # when each word is sung

The daemon streams a preview first; `--preview FILE` writes it as soon as it is complete.
`--lyric-labels FILE` writes each word's timing as it comes, as an Audacity label track
(`START_S<tab>END_S<tab>WORD` per line; Audacity's File > Import > Labels, or a DAW that reads them).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

from clients.cli.common import (DEFAULT_OUTPUT, EventStream, add_connection_arguments, audio_output_path, check_writable,
                                connect, run_job)
from protocol.errors import InvalidArgument
from protocol.messages import Chunk, Event, Lyric


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("jukebox", help="Jukebox sampling and upsampling (daemon must be running)")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    sample = actions.add_parser("sample", help="a new piece from artist, genres and lyrics (optionally primed)")
    sample.add_argument("--duration", type=float, required=True, metavar="SECONDS",
                        help="length of the whole piece, prime included")
    sample.add_argument("--prime", type=Path, help="audio file to continue (its samples are sent)")
    sample.add_argument("--sketch", action="store_true",
                        help="top level only: quick, coarse; its codes can be upsampled later (with --save)")
    sample.add_argument("--lyric-labels", type=Path, metavar="FILE",
                        help="write when each word of the lyrics is sung (an Audacity label track), as it comes")
    _add_common(sample)
    upsample = actions.add_parser("upsample", help="full-rate audio from top-level codes")
    upsample.add_argument("source", help="an earlier saved job's id, a .npz/.npy codes file, or an audio file")
    _add_common(upsample)


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--artist", default="", help="as the model's vocabulary spells it (default: unknown)")
    parser.add_argument("--genres", default="", help="genre name(s), several joined by '_' (default: unknown)")
    lyrics = parser.add_mutually_exclusive_group()
    lyrics.add_argument("--lyrics", default="", help="lyrics to sing")
    lyrics.add_argument("--lyrics-file", type=Path, help="read the lyrics from this text file")
    parser.add_argument("--seed", type=int, help="same seed, labels and model give the same piece")
    parser.add_argument("--temperature", type=float, default=0.98, help="levels above the bottom (default 0.98)")
    parser.add_argument("--top-k", type=int, default=0, help="sample among the k best codes, 0 = all")
    parser.add_argument("--top-p", type=float, default=0.0, help="nucleus sampling mass in [0, 1], 0 = off")
    parser.add_argument("-o", "--output", type=audio_output_path, help="write the upsampled audio here (default JOB.wav)")
    parser.add_argument("--preview", type=audio_output_path, metavar="FILE", help="also write the preview here")
    parser.add_argument("--save", action="store_true", help="the daemon keeps the job's files (and codes) under --out")
    parser.add_argument("--model", "-m", help="Jukebox model id (default: the daemon's Jukebox)")
    parser.add_argument("--job", help="job id (default: the daemon picks one)")
    parser.add_argument("--priority", type=int, default=-10, help="higher runs first (default -10: after live requests)")
    add_connection_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    check_writable(args.output or Path.cwd() / DEFAULT_OUTPUT, args.preview, getattr(args, "lyric_labels", None))
    options = dict(artist=args.artist, genres=args.genres, temperature=args.temperature, top_k=args.top_k,
                   top_p=args.top_p, priority=args.priority, save=args.save)
    options["lyrics"] = _read_lyrics(args.lyrics_file) if args.lyrics_file else args.lyrics
    for name in ("seed", "model", "job"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    with connect(args) as client:
        stream: EventStream
        if args.action == "sample":
            prime = None
            if args.prime is not None:
                from daemon.audio.io import read_audio

                prime = read_audio(args.prime)  # sent with the request: the daemon need not see our disk
            if args.lyric_labels is not None:
                options["lyric_timing"] = True
            stream = client.jukebox_sample(args.duration, prime=None if prime is None else prime.samples,
                                           sample_rate=None if prime is None else prime.sample_rate,
                                           upsample=not args.sketch, **options)
            if args.lyric_labels is not None:
                stream = _LyricLabels(stream, args.lyric_labels)
        else:
            stream = client.jukebox_upsample(args.source, **options)
        if args.preview is not None:
            stream = _PreviewWriter(stream, args.preview)
        return run_job(client, stream, args.output)


def _read_lyrics(path: Path) -> str:
    """The --lyrics-file's text; InvalidArgument (a flag's value) when it cannot be read, before a request is sent."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise InvalidArgument(f"cannot read the lyrics file {path}: {reason}") from None


class _LyricLabels:
    """Passes a job's events on, writing each word's `lyric` event as a label line the moment it
    comes, once per word.

    A render that a restarted daemon resumes sends its words again from the first (it cannot know
    which ones this client heard), as it sends its audio again; a word is known by its `index`, and
    the resumed render's is the same word with the same timing (the same seed and tokens), so a word
    already written is skipped rather than written twice.
    """

    def __init__(self, stream: EventStream, path: Path) -> None:
        self._stream = stream
        self._path = path
        self._written: set[int] = set()  # the `index` of every word in the file
        self.job = stream.job

    def __iter__(self) -> Iterator[Event]:
        with self._path.open("w", encoding="utf-8") as labels:
            for event in self._stream:
                self.job = self._stream.job
                if isinstance(event, Lyric) and event.index not in self._written:
                    self._written.add(event.index)
                    labels.write(f"{event.start_s:.6f}\t{event.end_s:.6f}\t{event.text}\n")
                    labels.flush()
                yield event

    def cancel(self) -> None:
        self._stream.cancel()


class _PreviewWriter:
    """Passes a job's events on, and writes the preview stage to a file once it is complete."""

    def __init__(self, stream: EventStream, path: Path) -> None:
        self._stream = stream
        self._path = path
        self._blocks: list = []
        self._sample_rate = 0
        self.job = stream.job

    def __iter__(self) -> Iterator[Event]:
        for event in self._stream:
            self.job = self._stream.job
            if isinstance(event, Chunk) and event.stage == "preview":
                self._blocks.append(event.audio)
                self._sample_rate = event.sample_rate
            elif self._blocks and (isinstance(event, Chunk) or event.TYPE == "done"):
                self._write()
            yield event

    def cancel(self) -> None:
        self._stream.cancel()

    def _write(self) -> None:
        import numpy as np

        from daemon.audio.io import write_audio

        path = write_audio(self._path, np.concatenate(self._blocks, axis=1), self._sample_rate)
        self._blocks = []
        print(f"{path} (preview)")
