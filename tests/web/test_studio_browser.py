"""The studio in a real browser (headless Chromium) against a daemon on debug/musicgen.

One browser session for the module; the tests run in order, as a person would use the page.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from daemon_harness import DaemonThread

from clients import Client
from protocol.messages import Error, Progress

pytestmark = pytest.mark.timeout(240)

SAMPLE_RATE = 32000


def wait_until(predicate: Callable[[], object], timeout_s: float = 60.0, what: str = "condition") -> object:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def console_errors(browser) -> list[dict]:
    return [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


def attribute(browser, css: str, name: str) -> str | None:
    return browser.execute_script(f"const e = document.querySelector({css!r}); return e && e.getAttribute({name!r});")


def record_changes(browser) -> None:
    """Record every value the waveform's and the worklet's counters take (a test-side observer)."""
    browser.execute_script("""
        window.__seen = {frames: [], worklet: []};
        const wave = document.querySelector('#wave'), now = document.querySelector('#now');
        new MutationObserver(() => window.__seen.frames.push(Number(wave.dataset.frames)))
            .observe(wave, {attributes: true, attributeFilter: ['data-frames']});
        new MutationObserver(() => window.__seen.worklet.push(Number(now.dataset.workletReceived)))
            .observe(now, {attributes: true, attributeFilter: ['data-worklet-received']});
    """)


def fill(browser, element_id: str, text: str) -> None:
    from selenium.webdriver.common.by import By

    field = browser.find_element(By.ID, element_id)
    field.clear()
    field.send_keys(text)


def click(browser, css: str) -> None:
    from selenium.webdriver.common.by import By

    browser.find_element(By.CSS_SELECTOR, css).click()


def wait_for_take(browser, previous: str | None = None) -> str:
    """The job id of the take the page shows once its stream is done."""
    def shown() -> str | None:
        job = attribute(browser, "#take", "data-job")
        visible = attribute(browser, "#take", "hidden") is None
        return job if visible and job and job != previous else None

    return str(wait_until(shown, what="the take to be ready"))


def wait_for_download(folder: Path, name: str) -> bytes:
    path = folder / name
    wait_until(lambda: path.is_file() and not list(folder.glob("*.crdownload")), what=f"the download {name}")
    return path.read_bytes()


def test_the_page_loads_with_no_console_errors(browser, studio_daemon: DaemonThread) -> None:
    browser.get(studio_daemon.addresses.web_url)
    wait_until(lambda: attribute(browser, "#connection", "class") == "pill ok", what="the WebSocket")
    models = "return document.querySelector('#models').textContent"
    wait_until(lambda: "debug/musicgen" in browser.execute_script(models), what="the resident model")
    assert browser.execute_script("return document.querySelector('#device').textContent") == "cpu"
    assert browser.title == "riffd studio"
    assert console_errors(browser) == []


def test_a_prompt_streams_into_the_worklet_and_ends_with_the_saved_take(browser, studio_daemon: DaemonThread) -> None:
    record_changes(browser)
    fill(browser, "prompt", "dusty lofi drums")
    fill(browser, "duration", "1")
    click(browser, "#go")
    job = wait_for_take(browser)
    frames = SAMPLE_RATE  # 1 s
    # Every chunk reached the AudioWorklet, and it played them all (headless Chromium renders audio).
    wait_until(lambda: attribute(browser, "#now", "data-worklet-played") == str(frames), what="the worklet to play it")
    assert attribute(browser, "#now", "data-worklet-received") == str(frames)
    seen = browser.execute_script("return window.__seen")
    # The waveform grew chunk by chunk to the whole take (after its reset to 0 when the job started).
    growth = [value for value in seen["frames"] if value > 0]
    assert len(growth) >= 2 and growth == sorted(set(growth)) and growth[-1] == frames
    assert int(attribute(browser, "#now", "data-chunks") or 0) == len(growth)
    assert int(attribute(browser, "#wave", "data-columns") or 0) > 100
    # The download is the daemon's saved file, byte for byte.
    click(browser, "#download")
    saved = Path(studio_daemon.config.out_dir) / f"{job}.wav"
    assert wait_for_download(browser.download_dir, f"{job}.wav") == saved.read_bytes()
    info = sf.info(str(saved))
    assert (info.samplerate, info.frames, info.subtype) == (SAMPLE_RATE, frames, "PCM_24")  # the form's 24-bit default
    # Export at another rate and depth: converted from the saved take by the daemon.
    browser.execute_script("""
        const set = (id, v) => {
            const e = document.getElementById(id); e.value = v; e.dispatchEvent(new Event('change')); };
        set('export-format', 'flac'); set('export-rate', '48000'); set('export-depth', '16');""")
    click(browser, "#export")
    exported = wait_for_download(browser.download_dir, f"{job}-48000hz-16bit.flac")
    info = sf.info(io.BytesIO(exported))
    assert (info.format, info.samplerate, info.subtype, info.frames) == ("FLAC", 48000, "PCM_16", 48000)
    # Drag-out: the drag carries the take as a download Chrome saves where it is dropped.
    drag = browser.execute_script("""
        const data = new DataTransfer();
        document.getElementById('drag').dispatchEvent(new DragEvent('dragstart', {dataTransfer: data, bubbles: true}));
        return data.getData('DownloadURL');""")
    kind, name, url = drag.split(":", 2)
    assert (kind, name) == ("audio/wav", f"{job}.wav")
    assert url.startswith("http://127.0.0.1:") and f"/takes/{job}?" in url
    seed = browser.execute_script("return document.querySelector('#seed-reported').textContent")
    assert seed.isdigit()
    # History: "same again with seed N" renders the same audio.
    click(browser, f'button[data-again="{job}"]')
    again = wait_for_take(browser, previous=job)
    first, _ = sf.read(str(saved), dtype="float32")
    second, _ = sf.read(str(Path(studio_daemon.config.out_dir) / f"{again}.wav"), dtype="float32")
    np.testing.assert_array_equal(first, second)
    assert browser.execute_script("return document.querySelector('#seed-reported').textContent") == seed
    assert console_errors(browser) == []


def test_a_continuation_from_a_dropped_file(browser, studio_daemon: DaemonThread, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    t = np.arange(SAMPLE_RATE // 2) / SAMPLE_RATE
    region = tmp_path / "region.wav"
    sf.write(region, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), SAMPLE_RATE)
    previous = attribute(browser, "#take", "data-job")
    click(browser, '[data-mode="continue"]')
    browser.find_element(By.ID, "file").send_keys(str(region))
    chosen = "return document.querySelector('#drop-file').textContent"
    wait_until(lambda: "region.wav" in browser.execute_script(chosen), what="the file to be decoded")
    fill(browser, "duration", "0.5")
    click(browser, "#go")
    job = wait_for_take(browser, previous=previous)
    take = studio_daemon.daemon._web.studio.takes.get(job)
    assert take.request["type"] == "continue" and take.request["audio"]["inline"] is True
    assert abs(take.request["audio"]["seconds"] - 0.5) < 1e-3
    click(browser, '[data-mode="generate"]')
    assert console_errors(browser) == []


def test_a_python_client_job_shows_with_progress_and_cancel_works(browser, studio_daemon: DaemonThread,
                                                                  artifacts: Path) -> None:
    events: list = []

    def run() -> None:
        with Client(studio_daemon.zmq, timeout_s=120) as client:
            events.extend(client.generate("from a python script", duration_s=60, job="py-job", priority=3))

    thread = threading.Thread(target=run)
    thread.start()
    try:
        row = 'tr[data-job="py-job"]'
        wait_until(lambda: any(isinstance(e, Progress) for e in events), what="progress from the daemon")

        def progressing() -> bool:
            value = browser.execute_script(f"const p = document.querySelector('{row} progress'); return p && p.value")
            return bool(value and value > 0)

        wait_until(progressing, what="the job's progress on the board")
        cells = browser.execute_script(f"return [...document.querySelectorAll('{row} td')].map(td => td.textContent)")
        assert cells[1] == "zmq" and cells[2] == "generate" and cells[5] == "3" and cells[6] == "running"
        browser.execute_script("window.scrollTo(0, 0)")
        assert browser.save_screenshot(str(artifacts / "studio.png"))
        click(browser, 'button[data-cancel="py-job"]')
        thread.join(60)
        assert not thread.is_alive()
    finally:
        if thread.is_alive():
            studio_daemon.daemon._scheduler.cancel("py-job")
            thread.join(60)
    assert isinstance(events[-1], Error) and events[-1].code == "cancelled"
    wait_until(lambda: browser.execute_script(f"return document.querySelector('{row}') === null"), what="the row to go")
    ended = browser.execute_script("return document.querySelector('#ended [data-job=\"py-job\"]').textContent")
    assert "cancelled" in ended
    assert console_errors(browser) == []


@pytest.mark.parametrize(("duration", "message"), [
    ("-1", "duration_s must be positive, got -1.0 [invalid_argument]"),
    ("9000", "duration_s 9000.0 is over the maximum of 300.0 s [duration_too_long]"),
    ("soon", "generate: duration_s must be a float, got str 'soon' [invalid_argument]"),
])
def test_a_bad_duration_shows_the_daemons_error(browser, duration: str, message: str) -> None:
    fill(browser, "duration", duration)
    click(browser, "#go")
    wait_until(lambda: attribute(browser, "#error", "hidden") is None, what="the error box")
    assert browser.execute_script("return document.querySelector('#error').textContent") == message
    assert browser.execute_script("return document.querySelector('#go').disabled") is False
    assert console_errors(browser) == []


def test_a_take_in_bars_at_a_tempo_from_the_in_time_box(browser, studio_daemon: DaemonThread) -> None:
    """Issue 15's fields from the page: 1 bar at 97 BPM is exactly 4 beats of samples, launched on the bar."""
    previous = attribute(browser, "#take", "data-job")
    click(browser, "#in-time summary")
    fill(browser, "prompt", "a bar of drums")
    fill(browser, "bars", "1")
    fill(browser, "bpm", "97")
    browser.execute_script("""
        const launch = document.getElementById('launch'); launch.value = 'bar';
        document.getElementById('conform').checked = false;""")
    click(browser, "#go")
    job = wait_for_take(browser, previous=previous)
    take = studio_daemon.daemon._web.studio.takes.get(job)
    sent = {name: take.request.get(name) for name in ("bars", "bpm", "launch", "conform", "duration_s")}
    assert sent == {"bars": 1, "bpm": 97.0, "launch": "bar", "conform": False, "duration_s": 0.0}, sent
    info = sf.info(str(Path(studio_daemon.config.out_dir) / f"{job}.wav"))
    assert info.frames == round(4 * 60 / 97 * SAMPLE_RATE)
    # The board shows the daemon's timeline, now at the take's tempo.
    tempo = "return document.querySelector('#tempo').textContent"
    wait_until(lambda: browser.execute_script(tempo).startswith("97.00 BPM (own timeline), beat "), what="the tempo")
    assert console_errors(browser) == []
    # Back to takes in seconds for whatever runs next.
    fill(browser, "bars", "")
    fill(browser, "bpm", "")
    browser.execute_script("""
        document.getElementById('launch').value = ''; document.getElementById('conform').checked = true;""")


def test_a_take_saved_as_32_bit_float_and_a_flac_of_floats_refused(browser, studio_daemon: DaemonThread) -> None:
    """The Saved file box's 32-bit float: the request names it (bit_depth "float", as the CLI's --bit-depth
    float) and the saved WAV holds float samples, as does an export at 32 bit float; FLAC has no float
    samples: with it the daemon refuses the request, and the page says why."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.select import Select

    previous = attribute(browser, "#take", "data-job")
    click(browser, "#saved-file summary")
    depth = Select(browser.find_element(By.ID, "out-depth"))
    depth.select_by_visible_text("32 float (WAV)")
    fill(browser, "prompt", "floating pads")
    fill(browser, "duration", "0.5")
    click(browser, "#go")
    job = wait_for_take(browser, previous=previous)
    assert studio_daemon.daemon._web.studio.takes.get(job).request["bit_depth"] == "float"
    info = sf.info(str(Path(studio_daemon.config.out_dir) / f"{job}.wav"))
    assert (info.format, info.subtype, info.frames) == ("WAV", "FLOAT", SAMPLE_RATE // 2)
    # The export's float: a float WAV named as the daemon names it; not offered for a FLAC.
    Select(browser.find_element(By.ID, "export-format")).select_by_value("wav")
    Select(browser.find_element(By.ID, "export-rate")).select_by_value("")
    export_depth = Select(browser.find_element(By.ID, "export-depth"))
    export_depth.select_by_visible_text("32 bit float")
    click(browser, "#export")
    exported = sf.info(io.BytesIO(wait_for_download(browser.download_dir, f"{job}-float.wav")))
    assert (exported.format, exported.subtype, exported.frames) == ("WAV", "FLOAT", SAMPLE_RATE // 2)
    Select(browser.find_element(By.ID, "export-format")).select_by_value("flac")
    assert export_depth.first_selected_option.get_attribute("value") == "24"
    assert browser.execute_script("return document.querySelector('#export-depth [value=float]').disabled") is True
    # A FLAC of float samples is asked for as it is, and refused by the daemon with the reason.
    Select(browser.find_element(By.ID, "out-format")).select_by_value("flac")
    click(browser, "#go")
    wait_until(lambda: attribute(browser, "#error", "hidden") is None, what="the error box")
    assert browser.execute_script("return document.querySelector('#error').textContent") == (
        "FLAC stores 16 or 24-bit samples, not 32-bit float (it has no float samples: ask for WAV) [invalid_argument]")
    assert browser.execute_script("return document.querySelector('#go').disabled") is False
    assert console_errors(browser) == []
    Select(browser.find_element(By.ID, "out-format")).select_by_value("wav")
    depth.select_by_value("24")
