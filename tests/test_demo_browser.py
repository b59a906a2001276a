"""The demo page in a real browser: headless Chromium (Debian's chromium + chromium-driver) driven by Selenium
against `ifcn-eval demo` started as users start it. Skipped where Chromium is missing, except under CI (`.ci/run`
installs it), where a missing browser is a failure.

`IFCN_DEMO_SCREENSHOT=docs/demo.png` also saves the page's screenshot there (the README's picture);
`IFCN_DEMO_CHECKPOINT` / `IFCN_DEMO_IMAGES` run the tests on another checkpoint and image folder (a trained model
makes a better picture).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ifcn.cli_options import MAX_SIDE
from ifcn.trainer.inference import Predictor
from ifcn.trainer.inference.images import read_image
from tests.browser import ActionChains, By, Keys, WebDriver, WebDriverWait, chromium_factory
from tests.demo_data import DEMO_HOST, make_demo_checkpoint, session_probs, write_images
from tests.ports import free_port

#: The browser-test images are larger than the API tests' ones, so the page (and the screenshot) shows something.
SIZE = (180, 240)
TIMEOUT = 60


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """`ifcn-eval demo` on a fixed checkpoint, as a child process on a free loopback port."""
    root = tmp_path_factory.mktemp("demo_browser")
    checkpoint = Path(os.environ.get("IFCN_DEMO_CHECKPOINT") or make_demo_checkpoint(root / "fixed.pt"))
    images = Path(os.environ.get("IFCN_DEMO_IMAGES") or write_images(root / "images", 3, SIZE))
    port = free_port()
    log = open(root / "server.log", "w")  # noqa: SIM115 (closed below, after the process)
    command = [str(Path(sys.executable).with_name("ifcn-eval")), "demo", "--checkpoint", str(checkpoint),
               "--images", str(images), "--host", DEMO_HOST, "--port", str(port), "--device", "cpu"]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://{DEMO_HOST}:{port}"
    try:
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                _get_json(url + "/api/images")
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the demo server did not start: {(root / 'server.log').read_text()}")
                time.sleep(0.3)
        yield {"url": url, "checkpoint": checkpoint, "images": images, "downloads": root / "downloads"}
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def predictor(server: dict) -> Predictor:
    return Predictor.from_checkpoint(server["checkpoint"], device="cpu")


@pytest.fixture
def browser(server: dict, tmp_path: Path) -> Iterator[Callable[[], WebDriver]]:
    """A factory of headless Chromium instances (each with its own empty profile), all quit at the end."""
    with chromium_factory(tmp_path, (1000, 760), server["downloads"]) as start:
        yield start


def _wait_ready(driver: WebDriver, clicks: int) -> dict:
    """Wait until the page shows the answer to its last request with `clicks` clicks; return the session state."""
    canvas = driver.find_element(By.ID, "canvas")
    WebDriverWait(driver, TIMEOUT).until(
        lambda d: canvas.get_attribute("data-state") == "ready" and canvas.get_attribute("data-clicks") == str(clicks))
    assert not driver.find_element(By.ID, "message").text
    base = driver.current_url.rstrip("/")
    return _get_json(f"{base}/api/sessions/{canvas.get_attribute('data-session')}")


def _click(driver: WebDriver, y: int, x: int, kind: str = "left") -> None:
    """Click at image pixel (y, x) of the canvas (shown at 1:1): left, right or shift+left."""
    canvas = driver.find_element(By.ID, "canvas")
    rect = canvas.rect
    assert (round(rect["width"]), round(rect["height"])) == (int(canvas.get_attribute("width")),
                                                             int(canvas.get_attribute("height")))
    actions = ActionChains(driver).move_to_element_with_offset(canvas, round(x + 0.5 - rect["width"] / 2),
                                                               round(y + 0.5 - rect["height"] / 2))
    if kind == "right":
        actions.context_click()
    elif kind == "shift":
        actions.key_down(Keys.SHIFT).click().key_up(Keys.SHIFT)
    else:
        actions.click()
    actions.perform()


def _clicks(state: dict) -> list[tuple[int, int, bool]]:
    return [(c["y"], c["x"], c["positive"]) for c in state["clicks"]]


def _expected_mask(predictor: Predictor, server: dict, state: dict) -> np.ndarray:
    image = read_image(server["images"] / state["name"], MAX_SIDE).rgb
    return session_probs(predictor, image, _clicks(state)) > 0.5


def test_clicks_give_the_predictor_mask_and_it_downloads(server: dict, predictor: Predictor,
                                                          browser: Callable[[], WebDriver], tmp_path: Path) -> None:
    driver = browser()
    driver.get(server["url"] + "/")
    state = _wait_ready(driver, 0)
    h, w = state["height"], state["width"]
    wanted = [(h // 2, w // 2, True), (h // 6, w // 8, False), (h - 10, w - 12, False), (h // 2 + 20, w // 3, True)]
    for n, ((y, x, _), kind) in enumerate(zip(wanted, ("left", "right", "shift", "left"), strict=True), 1):
        _click(driver, y, x, kind)
        state = _wait_ready(driver, n)
    got = _clicks(state)
    assert [g[2] for g in got] == [c[2] for c in wanted]
    assert all(abs(g[0] - c[0]) <= 1 and abs(g[1] - c[1]) <= 1 for g, c in zip(got, wanted, strict=True)), got
    assert "server time of the last prediction" in driver.find_element(By.ID, "status").text

    driver.find_element(By.ID, "download").click()
    path = server["downloads"] / f"{Path(state['name']).stem}-mask.png"
    WebDriverWait(driver, TIMEOUT).until(lambda d: path.is_file() and path.stat().st_size > 0)
    downloaded = np.asarray(Image.open(path))
    expected = _expected_mask(predictor, server, state)
    assert downloaded.shape == (h, w) and 0 < expected.sum() < expected.size
    np.testing.assert_array_equal(downloaded > 127, expected)

    # The overlay is on the canvas: pixels inside the mask are tinted towards red, outside left alone.
    shot = tmp_path / "page.png"
    assert driver.save_screenshot(str(shot))
    if os.environ.get("IFCN_DEMO_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["IFCN_DEMO_SCREENSHOT"])
    drawn = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    rect = driver.find_element(By.ID, "canvas").rect
    top, left = round(rect["y"]), round(rect["x"])
    shown = drawn[top:top + h, left:left + w]
    photo = read_image(server["images"] / state["name"]).rgb.astype(int)
    redness = (shown[..., 0] - shown[..., 1]) - (photo[..., 0] - photo[..., 1])
    far = np.ones((h, w), bool)
    for y, x, _ in got:  # leave out the click markers
        far[max(0, y - 25):y + 25, max(0, x - 25):x + 25] = False
    assert np.median(redness[expected & far]) > 40 and abs(np.median(redness[~expected & far])) < 10


def test_undo_next_image_and_independent_sessions(server: dict, predictor: Predictor,
                                                  browser: Callable[[], WebDriver]) -> None:
    first = browser()
    first.get(server["url"] + "/")
    state = _wait_ready(first, 0)
    h, w = state["height"], state["width"]
    _click(first, h // 2, w // 2)
    _wait_ready(first, 1)
    _click(first, 5, 5, "right")
    _wait_ready(first, 2)
    first.find_element(By.ID, "undo").click()
    state_a = _wait_ready(first, 1)
    assert len(state_a["clicks"]) == 1 and state_a["clicks"][0]["positive"]

    second = browser()  # another browser: its own page, its own session
    second.get(server["url"] + "/")
    _wait_ready(second, 0)
    _click(second, 10, 20, "shift")
    state_b = _wait_ready(second, 1)
    assert state_b["id"] != state_a["id"] and not state_b["clicks"][0]["positive"]
    assert _get_json(f"{server['url']}/api/sessions/{state_a['id']}")["clicks"] == state_a["clicks"]
    mask = Image.open(urllib.request.urlopen(f"{server['url']}/api/sessions/{state_a['id']}/mask.png"))
    np.testing.assert_array_equal(np.asarray(mask) > 127, _expected_mask(predictor, server, state_a))

    first.find_element(By.ID, "reset").click()
    assert _wait_ready(first, 0)["clicks"] == []
    first.find_element(By.ID, "next").click()
    WebDriverWait(first, TIMEOUT).until(
        lambda d: d.find_element(By.ID, "canvas").get_attribute("data-session") != state_a["id"])
    state_next = _wait_ready(first, 0)
    assert state_next["name"] != state_a["name"]
    assert _get_json(f"{server['url']}/api/sessions/{state_b['id']}")["clicks"] == state_b["clicks"]
