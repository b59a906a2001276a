"""Headless Chromium (Debian's chromium + chromium-driver, driven by Selenium) for the browser tests. Importing this
module skips the importing test module where any of the three is missing (a GPU machine's image has none), and fails
it under CI (`.ci/run` installs them); so the test modules take Selenium's names from here, after that check."""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
if not (CHROMIUM and CHROMEDRIVER and importlib.util.find_spec("selenium")):
    if os.environ.get("CI"):
        pytest.fail("the browser tests need Debian's chromium and chromium-driver and selenium (.ci/run installs them)",
                    pytrace=False)
    pytest.skip("chromium/chromedriver/selenium not installed (apt-get install chromium chromium-driver; "
                "pip install -e '.[dev]')",
                allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.actions.wheel_input import ScrollOrigin  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

#: Selenium's names the browser tests use, imported only once the check above passed.
__all__ = ["ActionChains", "By", "Keys", "ScrollOrigin", "WebDriver", "WebDriverWait", "chromium_factory",
           "start_chromium"]

#: Quiet, reproducible browsers: no sandbox (containers), no GPU, no background traffic, no first-run pages.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-dev-shm-usage",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")


def start_chromium(profile: Path, window: tuple[int, int], downloads: Path | None = None) -> WebDriver:
    """One headless Chromium with its own empty `profile` folder and a `window` of (width, height); `downloads`, when
    given, receives downloads without a prompt."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--window-size={window[0]},{window[1]}", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    if downloads is not None:
        downloads.mkdir(parents=True, exist_ok=True)
        options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                                  "download.prompt_for_download": False})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    if downloads is not None:
        driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    return driver


@contextmanager
def chromium_factory(profiles: Path, window: tuple[int, int],
                     downloads: Path | None = None) -> Iterator[Callable[[], WebDriver]]:
    """A factory of browsers (each with a fresh profile under `profiles`), all quit on leaving."""
    drivers: list[WebDriver] = []

    def start() -> WebDriver:
        drivers.append(start_chromium(profiles / f"profile-{len(drivers)}", window, downloads))
        return drivers[-1]

    try:
        yield start
    finally:
        for driver in drivers:
            driver.quit()
