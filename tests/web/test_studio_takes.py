"""The studio's takes over real sockets: each is the file its job saved, described by that file's
header, and never another job's file saved later under the same name."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import soundfile as sf
from daemon_harness import DaemonThread, fake_loader, make_config
from studio_client import close_tab, events_until_done, get, open_tab, studio_url, web_request

from clients import Client
from protocol.messages import Done


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonThread]:
    out = tmp_path_factory.mktemp("studio-takes")
    daemon = DaemonThread(make_config(out, models=("fake/fast",)), loader=fake_loader).start()
    yield daemon
    daemon.stop()


def _take_url(daemon: DaemonThread, job: str, rest: str = "") -> str:
    """The take's URL with the token; `rest` is what follows its job id (/export?...)."""
    return f"/takes/{job}{rest}{'&' if '?' in rest else '?'}token={studio_url(daemon)[1]}"


async def _takes_until(tab: aiohttp.ClientWebSocketResponse, wanted: Any) -> list[dict[str, Any]]:
    """The takes of the first `web.takes` message on `tab` for which `wanted(takes)` holds (within 30 s:
    the board's own messages keep coming meanwhile)."""
    async with asyncio.timeout(30):
        while True:
            message = await tab.receive()
            if message.type is aiohttp.WSMsgType.TEXT:
                header = json.loads(message.data)
                if header["type"] == "web.takes" and wanted(header["takes"]):
                    return header["takes"]


def test_a_take_another_client_saved_over_is_gone_and_marked(studio: DaemonThread) -> None:
    # Reusing a job id is legitimate (a Pd patch sends `job loop1` with every take), so the ZeroMQ
    # job is accepted; the studio must then not serve its file as the take it lists.
    def zmq_job(job: str) -> Done:
        with Client(studio.zmq, timeout_s=30) as client:
            done = list(client.generate("someone else", duration_s=1.0, job=job, save=True, seed=2,
                                        bit_depth=16))[-1]
        assert isinstance(done, Done)
        return done

    async def scenario() -> tuple[str, list[dict[str, Any]], Done]:
        tab = await open_tab(studio, token=studio_url(studio)[1])
        try:
            await tab.send_str(json.dumps({"v": 1, "id": "mine", "type": "generate", "prompt": "my take",
                                           "duration_s": 2.0, "seed": 1, "bit_depth": 24, "save": True}))
            done = (await events_until_done(tab, "mine"))[-1]
            assert done["type"] == "done", done
            job = done["job"]
            listed = await _takes_until(tab, lambda takes: any(t["job"] == job for t in takes))
            [take] = [take for take in listed if take["job"] == job]
            assert (take["replaced"], take["subtype"], take["frames"]) == (False, "PCM_24", 32000)
            assert get(studio, _take_url(studio, job))[0] == 200
            other = await asyncio.to_thread(zmq_job, job)
            takes = await _takes_until(tab, lambda takes: any(t["job"] == job and t["replaced"] for t in takes))
            return job, takes, other
        finally:
            await close_tab(tab)

    job, takes, other = asyncio.run(scenario())
    [take] = [take for take in takes if take["job"] == job]
    assert take["request"]["prompt"] == "my take" and take["seed"] == 1  # the history keeps what the take was
    for rest in ("", "/export", "/export?format=flac&bit_depth=16"):
        status, body = get(studio, _take_url(studio, job, rest))
        assert status == 410, (rest, status, body)
        assert b"replaced by a later job with the same id" in body
    # The other client's file is its own, untouched.
    assert sf.info(str(other.path)).frames == 16000
    # A take the studio makes again under that id is served again.
    events = asyncio.run(web_request(studio, {"type": "generate", "prompt": "again", "duration_s": 0.5,
                                              "job": job, "save": True}))
    assert events[-1]["type"] == "done"
    status, body = get(studio, _take_url(studio, job))
    assert status == 200 and body == Path(other.path).read_bytes()
    assert studio.daemon._web.studio.takes.get(job).request["prompt"] == "again"


def test_a_take_at_another_rate_describes_its_file(studio: DaemonThread) -> None:
    # The model streams at 16 kHz; the saved file is at out_sample_rate, and the take says so.
    events = asyncio.run(web_request(studio, {"type": "generate", "prompt": "resampled", "duration_s": 0.5,
                                              "out_sample_rate": 48000, "bit_depth": 16, "save": True}))
    done = events[-1]
    assert (done["type"], done["sample_rate"], done["frames"]) == ("done", 16000, 8000)  # as it streamed
    take = studio.daemon._web.studio.takes.get(done["job"])
    info = sf.info(done["path"])
    assert (info.samplerate, info.frames, info.subtype) == (48000, 24000, "PCM_16")
    listed = take.to_json()
    assert (take.sample_rate, take.frames, listed["sample_rate"], listed["duration_s"]) == (48000, 24000, 48000, 0.5)
    assert take.subtype == "PCM_16"


def test_an_export_refuses_digits_that_are_not_ascii(studio: DaemonThread) -> None:
    events = asyncio.run(web_request(studio, {"type": "generate", "prompt": "x", "duration_s": 0.25, "save": True}))
    job = events[-1]["job"]
    # Superscript two, circled one, Arabic-Indic 48000: digits to str.isdigit(), not to a URL's number.
    for query in ("?bit_depth=%C2%B2", "?sample_rate=%E2%91%A0", "?sample_rate=%D9%A4%D9%A8%D9%A0%D9%A0%D9%A0"):
        status, body = get(studio, _take_url(studio, job, f"/export{query}"))
        assert status == 400 and b"must be a whole number" in body, (query, status, body)
    assert get(studio, _take_url(studio, job, "/export?bit_depth=16&sample_rate=48000"))[0] == 200
