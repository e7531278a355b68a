"""The studio's takes over real sockets."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from daemon_harness import DaemonThread, fake_loader, make_config
from studio_client import get, studio_url, web_request


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonThread]:
    out = tmp_path_factory.mktemp("studio-takes")
    daemon = DaemonThread(make_config(out, models=("fake/fast",)), loader=fake_loader).start()
    yield daemon
    daemon.stop()


def _take_url(daemon: DaemonThread, job: str, rest: str = "") -> str:
    """The take's URL with the token; `rest` is what follows its job id (/export?...)."""
    return f"/takes/{job}{rest}{'&' if '?' in rest else '?'}token={studio_url(daemon)[1]}"


def test_an_export_refuses_digits_that_are_not_ascii(studio: DaemonThread) -> None:
    events = asyncio.run(web_request(studio, {"type": "generate", "prompt": "x", "duration_s": 0.25, "save": True}))
    job = events[-1]["job"]
    # Superscript two, circled one, Arabic-Indic 48000: digits to str.isdigit(), not to a URL's number.
    for query in ("?bit_depth=%C2%B2", "?sample_rate=%E2%91%A0", "?sample_rate=%D9%A4%D9%A8%D9%A0%D9%A0%D9%A0"):
        status, body = get(studio, _take_url(studio, job, f"/export{query}"))
        assert status == 400 and b"must be a whole number" in body, (query, status, body)
    assert get(studio, _take_url(studio, job, "/export?bit_depth=16&sample_rate=48000"))[0] == 200
