"""The web studio's tests: a daemon with the studio on a free port, and one headless Chromium
(Debian's, driven by its own chromium-driver through selenium) shared by the browser tests."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_harness import DaemonThread, make_config

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Flags for this closed network: no background fetches (refused here, and slow to give up on),
# no sandbox (we run as root), no GPU; audio may start without a gesture (a click is one anyway).
CHROMIUM_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--autoplay-policy=no-user-gesture-required", "--window-size=1400,1000",
)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where the browser tests leave screenshots for people to look at ($RIFFD_TEST_ARTIFACTS/web,
    default test-artifacts/web in the checkout)."""
    folder = Path(os.environ.get("RIFFD_TEST_ARTIFACTS", REPO / "test-artifacts")) / "web"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def studio_daemon(tmp_path_factory: pytest.TempPathFactory, riffd_cache: Path) -> Iterator[DaemonThread]:
    """The real debug/musicgen preset with the studio on a free port."""
    out = tmp_path_factory.mktemp("studio-out")
    daemon = DaemonThread(make_config(out, models=("debug/musicgen",), cache_dir=riffd_cache, log_level="INFO",
                                      max_audio_s=5.0)).start()
    assert daemon.addresses.web_url is not None
    yield daemon
    daemon.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """One headless Chromium for the module; downloads land in `browser.download_dir`."""
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        pytest.fail("Debian's chromium and chromium-driver are missing: run `bash .ci/setup.sh --test`")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = Path(tempfile.mkdtemp(prefix="riffd-chromium-"))
    downloads = tmp_path_factory.mktemp("downloads")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    driver.download_dir = downloads  # type: ignore[attr-defined]
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
