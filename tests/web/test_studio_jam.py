"""The studio's jam controls in a real browser against a jam on debug/musicgen: start, weighted
prompts and temperature applied while it plays, snapshot, stop with its saved take, resume."""

from __future__ import annotations

from pathlib import Path

import pytest
from daemon_harness import DaemonThread
from test_studio_browser import attribute, click, console_errors, fill, wait_for_download, wait_for_take, wait_until

from protocol.messages import REQUESTS

pytestmark = [
    pytest.mark.timeout(240),
    # Runs as soon as the jam (issue 14) is in the schema; until then there is nothing to steer.
    pytest.mark.skipif("jam" not in REQUESTS, reason="this daemon serves no jams yet (issue 14)"),
]


def set_range(browser, css: str, value: float) -> None:
    """Move a slider as a hand would: its value, then the input event the page listens to."""
    browser.execute_script(
        "const e = document.querySelector(arguments[0]); e.value = arguments[1];"
        "e.dispatchEvent(new Event('input', {bubbles: true}));", css, str(value))


def chunks(browser) -> int:
    return int(attribute(browser, "#now", "data-chunks") or 0)


def test_a_jam_is_steered_from_the_page(browser, studio_daemon: DaemonThread) -> None:
    browser.get(studio_daemon.addresses.web_url)
    wait_until(lambda: attribute(browser, "#jam-tab", "hidden") is None, what="the jam tab")
    click(browser, '[data-mode="jam"]')
    assert attribute(browser, "#duration-label", "hidden") is not None
    fill(browser, "prompt", "dub techno")
    click(browser, "#go")
    wait_until(lambda: attribute(browser, "#jam", "hidden") is None, what="the jam panel")
    wait_until(lambda: chunks(browser) >= 2, what="the jam's audio")
    # A second, weighted prompt and a new temperature: each is applied while it plays.
    click(browser, "#jam-add")
    browser.execute_script("const t = document.querySelectorAll('.jam-text')[1]; t.value = 'tabla';"
                           "t.dispatchEvent(new Event('change'));")
    set_range(browser, ".jam-row:nth-child(2) .jam-weight", 0.3)
    wait_until(lambda: int(attribute(browser, "#jam", "data-applied") or 0) >= 1, what="the prompts applied")
    set_range(browser, "#jam-temperature", 0.7)
    wait_until(lambda: int(attribute(browser, "#jam", "data-applied") or 0) >= 2, what="the temperature applied")
    assert "heard from" in browser.execute_script("return document.querySelector('#jam-applied-text').textContent")
    click(browser, "#jam-snapshot")
    snapshot = wait_until(lambda: attribute(browser, "#jam-snapshots li", "data-snapshot"), what="a snapshot")
    assert Path(str(snapshot)).is_file()
    heard = chunks(browser)
    wait_until(lambda: chunks(browser) > heard, what="more audio after the changes")
    click(browser, "#jam-stop")
    job = wait_for_take(browser)
    click(browser, "#download")
    saved = Path(studio_daemon.config.out_dir) / f"{job}.wav"
    assert wait_for_download(browser.download_dir, f"{job}.wav") == saved.read_bytes()
    # Resume from the snapshot: a new jam plays on from it.
    browser.execute_script("document.querySelector('#jam-snapshots li button').click()")
    wait_until(lambda: attribute(browser, "#jam", "hidden") is None and chunks(browser) >= 1, what="the resumed jam")
    click(browser, "#jam-stop")
    wait_for_take(browser, previous=job)
    assert console_errors(browser) == []
