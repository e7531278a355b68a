"""The studio's parts without a browser: its checks, exports, flags, and a daemon without it."""

from __future__ import annotations

import io
import logging
import os
import re
import socket
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from daemon_harness import DaemonThread, fake_loader, make_config

from clients import Client
from daemon.audio.io import write_audio
from daemon.config import add_arguments, build_config, config_from_args
from daemon.web import frames
from daemon.web.guard import WebGuard, split_host
from daemon.web.server import STATIC_DIR
from daemon.web.takes import ExportFormat, TakeReplaced, Takes, export
from protocol.errors import BadMessage, InvalidArgument, NotFound
from protocol.messages import Status


@pytest.mark.parametrize(("host", "expected"), [
    ("127.0.0.1:7403", ("127.0.0.1", 7403)), ("[::1]:7403", ("::1", 7403)), ("localhost", ("localhost", None)),
    ("::1", ("", None)), ("[::1]x", ("", None)), ("a:b", ("a", None)), ("h:999999", ("h", None)),
])
def test_split_host(host: str, expected: tuple) -> None:
    assert split_host(host) == expected


def test_the_guard_admits_this_machine_at_this_port_only() -> None:
    guard = WebGuard(token="t0ken", port=7403)
    for host in ("127.0.0.1:7403", "localhost:7403", "LOCALHOST:7403", "[::1]:7403", "127.0.0.2:7403"):
        assert guard.host_allowed(host), host
    for host in ("127.0.0.1", "127.0.0.1:7404", "evil.test:7403", "10.0.0.5:7403", "", None, "[::1]"):
        assert not guard.host_allowed(host), host
    remote = WebGuard.for_daemon(token="x", remote=True, names=("studio.lan",))
    remote.port = 7403
    assert remote.host_allowed("10.0.0.5:7403") and remote.host_allowed("studio.lan:7403")
    assert remote.host_allowed(f"{socket.gethostname()}:7403")
    assert not remote.host_allowed("evil.test:7403")  # a name could be rebound; only known ones pass
    assert guard.origin_allowed(None, "127.0.0.1:7403")
    assert guard.origin_allowed("http://127.0.0.1:7403", "127.0.0.1:7403")
    for origin in ("http://127.0.0.1:7403/x", "https://127.0.0.1:7403", "null", "http://evil.test",
                   "http://u@127.0.0.1:7403", "http://localhost:7403"):
        assert not guard.origin_allowed(origin, "127.0.0.1:7403"), origin
    assert guard.token_ok("t0ken") and not guard.token_ok("t0ke") and not guard.token_ok(None)
    assert WebGuard.for_daemon().token != WebGuard.for_daemon().token and len(WebGuard.for_daemon().token) >= 32


def test_frames_round_trip_and_refuse_what_does_not_add_up() -> None:
    parts = [b'{"v":1}', b"\x00" * 12, b""]
    assert [bytes(p) for p in frames.unpack(frames.pack(parts))] == parts
    for bad in (b"", b"\x01\x00", b"\x05\x00\x00\x00abc", frames.pack([b"x"] * (frames.MAX_FRAMES + 1))):
        with pytest.raises(BadMessage):
            frames.unpack(bad)


def test_a_take_exports_at_the_chosen_rate_and_depth(tmp_path: Path) -> None:
    t = np.arange(32000) / 32000
    audio = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    path = tmp_path / "job.wav"
    sf.write(path, audio, 32000, subtype="FLOAT")
    takes = Takes(tmp_path)
    take = takes.add("job", path, request={"type": "generate"}, seed=1)
    assert takes.get("job") is take and (take.frames, take.sample_rate, take.subtype) == (32000, 32000, "FLOAT")
    flac = export(take, ExportFormat.parse({"format": "flac", "sample_rate": "48000", "bit_depth": "16"}))
    info = sf.info(io.BytesIO(flac))
    assert (info.format, info.samplerate, info.subtype, info.frames) == ("FLAC", 48000, "PCM_16", 48000)
    data, _ = sf.read(io.BytesIO(flac), dtype="float32")
    spectrum = np.abs(np.fft.rfft(data))
    assert abs(np.argmax(spectrum) * 48000 / len(data) - 440) < 2  # the same tone, resampled
    same = export(take, ExportFormat.parse({}))
    assert sf.info(io.BytesIO(same)).subtype == "FLOAT"
    np.testing.assert_array_equal(sf.read(io.BytesIO(same), dtype="float32")[0], audio)
    for query in ({"format": "mp3"}, {"sample_rate": "7"}, {"sample_rate": "48k"}, {"bit_depth": "12"},
                  {"format": "flac", "bit_depth": "32"}, {"format": "flac", "bit_depth": "float"},
                  {"bit_depth": "floaty"}, {"bit_depth": "\u00b2"}, {"sample_rate": "\u2460"},
                  {"sample_rate": "\u0664\u0668\u0660\u0660\u0660"}):  # superscript 2, circled 1, Arabic-Indic 48000
        with pytest.raises(InvalidArgument):
            ExportFormat.parse(query)
    with pytest.raises(NotFound):
        takes.get("other")
    outside = tmp_path.parent / "outside.wav"
    with pytest.raises(InvalidArgument):
        takes.add("x", outside, request={}, seed=None)
    path.unlink()
    with pytest.raises(NotFound, match="gone"):
        takes.get("job")


def test_a_take_whose_file_another_job_saved_over_is_replaced_not_served(tmp_path: Path) -> None:
    path = tmp_path / "loop1.wav"
    sf.write(path, np.zeros(1600, np.float32), 16000, subtype="PCM_24")
    takes = Takes(tmp_path)
    take = takes.add("loop1", path, request={"type": "generate", "seed": 1}, seed=1)
    assert not takes.replaced("loop1")
    # Another client's job with the same id: its file renamed into place, as write_audio does.
    other = tmp_path / ".loop1.wav.part"
    sf.write(other, np.zeros(800, np.float32), 16000, subtype="PCM_16", format="WAV")
    os.replace(other, path)
    assert takes.replaced("loop1")
    with pytest.raises(TakeReplaced, match="replaced by a later job with the same id"):
        takes.get("loop1")
    with pytest.raises(TakeReplaced):
        export(take, ExportFormat.parse({}))  # the file opened is checked too, not only the path looked up
    # The same size and time stamp, but another file (a new inode): still not this take's.
    again = takes.add("loop1", path, request={}, seed=2)
    stat = path.stat()
    other.write_bytes(path.read_bytes())
    os.utime(other, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    os.replace(other, path)
    assert path.stat().st_size == again.identity.size_bytes and path.stat().st_mtime_ns == again.identity.mtime_ns
    assert takes.replaced("loop1")
    path.unlink()
    assert not takes.replaced("loop1")  # gone, which a download says
    with pytest.raises(NotFound, match="gone"):
        takes.get("loop1")


class _Options(HTMLParser):
    """The options of each <select> on a page: select id -> [(value, label)]."""

    def __init__(self) -> None:
        super().__init__()
        self.selects: dict[str, list[tuple[str, str]]] = {}
        self._select: str | None = None
        self._value: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "select":
            self._select = dict(attrs).get("id") or ""
            self.selects[self._select] = []
        elif tag == "option" and self._select is not None:
            self._value = dict(attrs).get("value") or ""

    def handle_data(self, data: str) -> None:
        if self._select is not None and self._value is not None:
            self.selects[self._select].append((self._value, data.strip()))
            self._value = None

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None


def _subtype_named(label: str) -> str:
    """The soundfile subtype a bit-depth label promises: "32 float" FLOAT, "24 bit" PCM_24."""
    bits = re.match(r"\d+", label)
    assert bits is not None, label
    return "FLOAT" if "float" in label.lower() else f"PCM_{bits[0]}"


def test_the_pages_bit_depths_say_what_the_files_hold(tmp_path: Path) -> None:
    page = _Options()
    page.feed((STATIC_DIR / "index.html").read_text())
    saved, exported = page.selects["out-depth"], page.selects["export-depth"]
    assert [value for value, _ in saved] == [value for value, _ in exported] == ["16", "24", "32", "float"]
    audio = np.zeros((1, 1600), np.float32)
    for value, label in saved:  # a take's saved file, written as the daemon's file sink writes it
        path = write_audio(tmp_path / f"saved-{value}.wav", audio, 16000, subtype=value)
        assert sf.info(str(path)).subtype == _subtype_named(label), label
    path = tmp_path / "take.wav"
    sf.write(path, audio.T, 16000, subtype="FLOAT")
    take = Takes(tmp_path).add("take", path, request={}, seed=None)
    for value, label in exported:
        body = export(take, ExportFormat.parse({"format": "wav", "bit_depth": value}))
        assert sf.info(io.BytesIO(body)).subtype == _subtype_named(label), label


def test_flags_choose_the_port_or_turn_the_studio_off() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert config_from_args(parser.parse_args([])).web and config_from_args(parser.parse_args([])).web_port == 7403
    assert config_from_args(parser.parse_args(["--web-port", "8000"])).web_port == 8000
    assert not config_from_args(parser.parse_args(["--no-web"])).web
    with pytest.raises(InvalidArgument, match="web_port"):
        build_config({"web_port": 70000})
    with pytest.raises(InvalidArgument, match="--allow-remote"):
        build_config({"host": "0.0.0.0"})  # the studio follows --host: loopback unless allowed, with keys


def test_no_web_and_a_taken_port_leave_the_daemon_serving(tmp_path: Path, caplog) -> None:
    with DaemonThread(make_config(tmp_path / "a", models=("fake/fast",), web=False), loader=fake_loader).start() as d:
        assert d.addresses.web_url is None and d.daemon._web is None
        with Client(d.zmq, timeout_s=10) as client:
            assert isinstance(client.status(), Status)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with caplog.at_level(logging.ERROR, logger="daemon.web.endpoint"):
            config = make_config(tmp_path / "b", models=("fake/fast",), web_port=port)
            with DaemonThread(config, loader=fake_loader).start() as d:
                assert d.addresses.web_url is None
                with Client(d.zmq, timeout_s=10) as client:
                    assert list(client.generate("x", duration_s=0.25))[-1].TYPE == "done"
        assert any("web studio not started" in record.message for record in caplog.records)


def test_the_board_follows_every_job_from_its_events() -> None:
    from daemon.scheduler import JobView
    from daemon.web.board import Board
    from protocol.messages import Accepted, Chunk, Done, Error, Progress, Started

    board = Board()
    view = [JobView(id="j", kind="jukebox_sample", model="debug/jukebox", priority=-10, client="osc", state="running",
                    position=-1, prompt="jazz", duration_s=4.0)]
    assert board.see(Accepted(job="j", queue_position=0))
    assert board.see(Started(job="j", model="debug/jukebox", sample_rate=44100, channels=1, seed=5))
    assert board.see(Progress(job="j", done=3, total=10))
    assert board.see(Chunk(job="j", index=0, offset_samples=0, sample_rate=44100, channels=1, frames=10,
                           stage="preview"))
    assert not board.see(Chunk(job="j", index=1, offset_samples=10, sample_rate=44100, channels=1, frames=10,
                               stage="preview"))  # nothing a person would see changed
    [row] = board.view(view)["jobs"]
    assert (row["done"], row["total"], row["stage"], row["seed"], row["client"]) == (3, 10, "preview", 5, "osc")
    assert board.see(Chunk(job="j", index=0, offset_samples=0, sample_rate=44100, channels=1, frames=10,
                           stage="final"))  # upsampling has begun
    assert board.view(view)["jobs"][0]["stage"] == "final"
    assert board.see(Done(job="j", frames=20, sample_rate=44100))
    assert board.view([])["ended"][0]["outcome"] == "done"
    # A request refused before it was a job is not on the board; a cancelled one is, with its code.
    assert not board.see(Error(job="never", code="invalid_argument", message="bad"))
    board.see(Accepted(job="k", queue_position=0))
    assert board.see(Error(job="k", code="cancelled", message="job k was cancelled"))
    assert [e["job"] for e in board.view([])["ended"]] == ["k", "j"]


def test_a_tab_sees_an_osc_clients_job_with_its_progress(tmp_path: Path) -> None:
    import asyncio
    import json

    import aiohttp
    from daemon_harness import OscPeer

    config = make_config(tmp_path / "out", models=("fake/slow",))
    with DaemonThread(config, loader=fake_loader).start() as daemon:
        url = daemon.addresses.web_url
        assert url is not None
        peer = OscPeer(daemon.osc_port)

        async def watch() -> tuple[dict, dict]:
            async with aiohttp.ClientSession() as session:
                socket_url = url.replace("http://", "ws://").replace("/?token=", "/ws?token=")
                async with session.ws_connect(socket_url) as tab:
                    peer.send("/riffd/generate", "from pd", 2.0, "job", "pd-job")
                    running = ended = None
                    while ended is None:
                        message = json.loads((await tab.receive(timeout=30)).data)
                        if message["type"] != "web.studio":
                            continue
                        rows = [row for row in message["jobs"] if row["id"] == "pd-job"]
                        if rows and rows[0].get("done", 0) > 0 and running is None:
                            running = rows[0]
                        ended = next((e for e in message["ended"] if e["job"] == "pd-job"), None)
                    assert running is not None
                    return running, ended

        try:
            running, ended = asyncio.run(watch())
        finally:
            peer.close()
    assert (running["client"], running["kind"], running["state"], running["prompt"]) == ("osc", "generate", "running",
                                                                                         "from pd")
    assert 0 < running["done"] <= running["total"] and ended["outcome"] == "done"
