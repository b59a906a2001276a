"""The annotation page in headless Chromium (Debian's chromium + chromium-driver) against `ifcn-eval annotate` run as
users run it. Three tests, kept few on purpose (the server's start-up is most of their time): a whole session (two
objects with different labels, a brush fix, finished, the server killed with SIGKILL and restarted, the page reloaded,
both still there, the export equal to what the API reports); the view and keyboard (zoom, pan, fit, shortcuts, the
busy sign, the offline /docs page); a burst of clicks (all drawn at once, the newest answer shown), the colours (click
markers green/red, the draft mask blue over the photo) and an object's cut-out PNG.

`IFCN_ANNOTATE_SCREENSHOT=docs/annotate.png` saves the page's screenshot there (the README's picture).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ifcn.trainer.annotate.project_export import export_project
from ifcn.trainer.annotate.store import AnnotatedObject
from tests.annotate_data import png_mask
from tests.browser import ActionChains, By, Keys, ScrollOrigin, WebDriver, WebDriverWait, chromium_factory
from tests.demo_data import make_demo_checkpoint, write_images
from tests.ports import free_port

SIZE = (180, 240)
TIMEOUT = 60


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


class Server:
    """`ifcn-eval annotate` as a child process on a fixed port; `start` again after `kill` reopens the project."""

    def __init__(self, root: Path) -> None:
        self.root, self.port = root, free_port()
        self.checkpoint = make_demo_checkpoint(root / "fixed.pt")
        self.images = write_images(root / "images", 3, SIZE)
        self.out = root / "project"
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        log = open(self.root / "server.log", "a")  # noqa: SIM115 (the child keeps it; closed with the test's files)
        command = [str(Path(sys.executable).with_name("ifcn-eval")), "annotate", "--checkpoint", str(self.checkpoint),
                   "--images", str(self.images), "--out", str(self.out), "--port", str(self.port), "--device", "cpu"]
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                _get(self.url + "/api/project")
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the annotation server did not start: {(self.root / 'server.log').read_text()}")
                time.sleep(0.3)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def api(self, path: str) -> object:
        return json.loads(_get(self.url + path))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for both tests (the whole-session test kills and restarts it): its start-up is most of the time."""
    running = Server(tmp_path_factory.mktemp("annotate_browser"))
    running.start()
    yield running
    if running.process.poll() is None:
        running.process.terminate()
        running.process.wait(timeout=30)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Callable[[], WebDriver]]:
    """A factory of headless Chromium instances (each with its own empty profile), all quit at the end."""
    with chromium_factory(tmp_path, (1100, 760), None) as start:
        yield start


def _js(driver: WebDriver, expression: str) -> object:
    return driver.execute_script(f"return {expression};")


def _wait(driver: WebDriver, condition: str) -> None:
    """Wait until the JavaScript `condition` holds and no request is in flight."""
    WebDriverWait(driver, TIMEOUT).until(lambda d: _js(d, f"annotate.inflight === 0 && ({condition})"))


def _point(driver: WebDriver, x: float, y: float) -> ActionChains:
    """An action chain with the pointer over image pixel (x, y), wherever the view puts it."""
    canvas = driver.find_element(By.ID, "canvas")
    sx, sy = _js(driver, f"annotate.toScreen({x + 0.5}, {y + 0.5})")
    rect = canvas.rect
    return ActionChains(driver).move_to_element_with_offset(canvas, round(sx - rect["width"] / 2),
                                                            round(sy - rect["height"] / 2))


def _keys(driver: WebDriver, *keys: str) -> None:
    ActionChains(driver).send_keys(*keys).perform()


def _open(driver: WebDriver, server: Server) -> None:
    driver.get(server.url + "/")
    _wait(driver, "annotate.draft !== null && annotate.image !== null && document.getElementById('canvas')"
                  ".dataset.state === 'ready'")


def test_whole_session_survives_kill_and_reload_and_exports_what_the_api_reports(
        server: Server, browser: Callable[[], WebDriver], tmp_path: Path) -> None:  # runs first: a fresh project
    driver = browser()
    _open(driver, server)
    image = _js(driver, "annotate.name")
    _point(driver, 120, 90).click().perform()  # the ellipse in the middle
    _wait(driver, "annotate.draft.clicks.length === 1")
    _keys(driver, "2")  # label 2: bicycle
    _wait(driver, "annotate.draft.label === 'bicycle'")
    _keys(driver, "b")  # brush on: paint a band along the top
    _point(driver, 20, 12).click_and_hold().perform()
    _point(driver, 100, 12).release().perform()
    _wait(driver, "annotate.draft.actions === 2")
    _keys(driver, "b", Keys.SPACE)
    _wait(driver, "annotate.objects.length === 1")
    _keys(driver, "3")  # bird
    _point(driver, 215, 165).click().perform()
    _wait(driver, "annotate.draft.clicks.length === 1 && annotate.draft.label === 'bird'")
    _keys(driver, Keys.SPACE)
    _wait(driver, "annotate.objects.length === 2")

    server.kill()  # SIGKILL: every finished object must already be on disk, whole
    files = sorted((server.out / "objects" / image).glob("*.json"))
    saved = [AnnotatedObject.from_json(json.loads(p.read_text())) for p in files]
    assert sorted(o.label for o in saved) == ["bicycle", "bird"] and all(o.mask.shape == SIZE for o in saved)
    brushed = next(o for o in saved if o.label == "bicycle")
    assert brushed.mask[12, 20:101].all()  # the brush fix is in the saved mask
    server.start()
    driver.refresh()
    _wait(driver, "annotate.objects.length === 2")
    assert [o["label"] for o in server.api(f"/api/images/{image}/objects")] == ["bicycle", "bird"]
    assert "0 / 3 images done" in driver.find_element(By.ID, "progress").text

    _keys(driver, Keys.TAB)  # select the first object, zoom in a little: the README's picture
    ActionChains(driver).scroll_from_origin(ScrollOrigin.from_element(driver.find_element(By.ID, "canvas")),
                                            0, -40).perform()
    shot = tmp_path / "annotate.png"
    assert driver.save_screenshot(str(shot))
    if os.environ.get("IFCN_ANNOTATE_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["IFCN_ANNOTATE_SCREENSHOT"])

    summary = export_project(server.out, tmp_path / "export")
    assert (summary.images, summary.objects) == (1, 2)
    listed = server.api(f"/api/images/{image}/objects")
    shown = np.zeros(SIZE, np.uint8)
    for i, obj in enumerate(listed, 1):
        shown[png_mask(_get(f"{server.url}/api/images/{image}/objects/{obj['id']}/mask.png"))] = i
    stem = Path(image).stem
    assert np.array_equal(np.asarray(Image.open(tmp_path / "export/VOC2012/SegmentationObject" / f"{stem}.png")), shown)
    classes = np.asarray(Image.open(tmp_path / "export/VOC2012/SegmentationClass" / f"{stem}.png"))
    assert set(np.unique(classes[shown == 1])) == {2} and set(np.unique(classes[shown == 2])) == {3}
    coco = json.loads((tmp_path / "export/annotations/instances_train.json").read_text())
    assert [a["category_id"] for a in coco["annotations"]] == [2, 3]
    assert [a["area"] for a in coco["annotations"]] == [int((shown == 1).sum()), int((shown == 2).sum())]


def test_view_shortcuts_busy_sign_and_offline_docs(server: Server, browser: Callable[[], WebDriver]) -> None:
    driver = browser()
    _open(driver, server)
    canvas = driver.find_element(By.ID, "canvas")
    view = lambda: [float(canvas.get_attribute(f"data-{k}")) for k in ("scale", "ox", "oy")]  # noqa: E731
    fitted = view()
    ActionChains(driver).scroll_from_origin(ScrollOrigin.from_element(canvas), 0, -300).perform()
    WebDriverWait(driver, TIMEOUT).until(lambda d: view()[0] > fitted[0] * 1.3)  # wheel: zoomed in
    zoomed = view()
    ActionChains(driver).move_to_element(canvas).click_and_hold().move_by_offset(60, 40).release().perform()
    panned = view()
    assert panned[1] == pytest.approx(zoomed[1] + 60, abs=2) and panned[2] == pytest.approx(zoomed[2] + 40, abs=2)
    assert _js(driver, "annotate.draft.clicks.length + annotate.pending.length") == 0  # a drag is no click
    _keys(driver, "f")
    assert view() == pytest.approx(fitted)

    objects = _js(driver, "annotate.objects.length")
    busy_before = _js(driver, "annotate.busyShown")
    _point(driver, 120, 90).click().perform()
    assert _js(driver, "Number(document.getElementById('canvas').dataset.markers)") == 1  # drawn at once
    assert _js(driver, "annotate.busyShown") > busy_before  # the busy sign was shown for it
    _wait(driver, "annotate.draft.clicks.length === 1")
    assert driver.find_element(By.ID, "busy").get_attribute("hidden") is not None  # and hidden after
    _point(driver, 10, 10).context_click().perform()
    _wait(driver, "annotate.draft.clicks.length === 2 && !annotate.draft.clicks[1].positive")
    ActionChains(driver).key_down(Keys.CONTROL).send_keys("z").key_up(Keys.CONTROL).perform()
    _wait(driver, "annotate.draft.clicks.length === 1 && annotate.draft.can_redo")
    ActionChains(driver).key_down(Keys.CONTROL).key_down(Keys.SHIFT).send_keys("z").key_up(Keys.SHIFT) \
        .key_up(Keys.CONTROL).perform()
    _wait(driver, "annotate.draft.clicks.length === 2")
    _keys(driver, "r")
    _wait(driver, "annotate.draft.clicks.length === 0")
    _point(driver, 120, 90).click().perform()
    _wait(driver, "annotate.draft.clicks.length === 1")
    _keys(driver, Keys.SPACE)
    _wait(driver, f"annotate.objects.length === {objects + 1}")
    _keys(driver, Keys.TAB, "4")  # select the first object, relabel it: boat
    _wait(driver, "annotate.selected === 0 && annotate.objects[0].label === 'boat'")
    first = _js(driver, "annotate.name")
    _keys(driver, "d")
    WebDriverWait(driver, TIMEOUT).until(lambda d: "1 / 3 images done" in d.find_element(By.ID, "progress").text)
    _keys(driver, "n")
    _wait(driver, f"annotate.name !== {json.dumps(first)} && annotate.objects.length === 0")
    _keys(driver, "p")
    _wait(driver, f"annotate.name === {json.dumps(first)} && annotate.objects.length === {objects + 1}")

    driver.get(server.url + "/docs")  # Swagger UI from the package's own files (this machine has no internet)
    WebDriverWait(driver, TIMEOUT).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".swagger-ui .opblock"))


def _canvas_rgb(driver: WebDriver, sx: float, sy: float) -> np.ndarray:
    return np.array(_js(driver, f"Array.from(document.getElementById('canvas').getContext('2d')"
                                f".getImageData({int(sx)}, {int(sy)}, 1, 1).data.slice(0, 3))"), float)


def _image_rgb(driver: WebDriver, x: int, y: int) -> np.ndarray:
    return np.array(_js(driver, f"(() => {{ const c = document.createElement('canvas'); c.width = c.height = 1; "
                                f"const g = c.getContext('2d'); g.drawImage(annotate.image, -{x}, -{y}); "
                                f"return Array.from(g.getImageData(0, 0, 1, 1).data.slice(0, 3)); }})()"), float)


def _hex_rgb(colour: str) -> np.ndarray:
    return np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)], float)


def test_burst_of_clicks_mask_colours_and_cutout(server: Server, browser: Callable[[], WebDriver]) -> None:
    driver = browser()
    _open(driver, server)
    third = _js(driver, "annotate.names[2]")
    while _js(driver, "annotate.name") != third:  # an image the other tests leave alone
        _keys(driver, "n")
        _wait(driver, "annotate.draft !== null && annotate.draft.image === annotate.name")
    chain = _point(driver, 120, 90).click()
    step = round(6 * _js(driver, "annotate.view.scale"))  # 6 image pixels
    for dx in (1, -2, 3):  # three more clicks on the same row, at x 126, 114 and 132
        chain = chain.move_by_offset(dx * step, 0).click()
    sent = _js(driver, "annotate.seq")
    chain.perform()
    assert _js(driver, "Number(document.getElementById('canvas').dataset.markers)") == 4  # all drawn at once
    _wait(driver, "annotate.draft.clicks.length === 4")  # every click kept, in order, whatever was superseded
    assert _js(driver, "annotate.seq") == sent + 4
    draft = server.api(f"/api/drafts/{_js(driver, 'annotate.draft.id')}")
    shown_clicks = _js(driver, "annotate.draft.clicks")
    assert [(c["x"], c["y"]) for c in draft["clicks"]] == [(c["x"], c["y"]) for c in shown_clicks]
    assert draft["version"] == _js(driver, "annotate.draft.version")  # the page shows the newest answer

    # colours: a click marker is its sign's colour; the draft mask is tinted blue, unlike any click colour
    sx, sy = _js(driver, "annotate.toScreen(120.5, 90.5)")
    assert np.abs(_canvas_rgb(driver, sx - 4, sy) - _hex_rgb(_js(driver, "'#00c853'"))).max() <= 2
    inside = _js(driver, """(() => { const L = annotate.draftLayer, d = L.getContext('2d')
        .getImageData(0, 0, L.width, L.height).data; const [cx, cy] = [120, 90];
        for (let y = 1; y < L.height - 1; y++) for (let x = 1; x < L.width - 1; x++) {
          const a = (i, j) => d[4 * ((y + j) * L.width + x + i) + 3] > 250;
          if (a(0, 0) && a(1, 0) && a(-1, 0) && a(0, 1) && a(0, -1) && Math.hypot(x - cx, y - cy) > 30) return [x, y];
        } return null; })()""")
    assert inside is not None, "the draft mask reaches 30 px from the clicks"
    x, y = inside
    shown = _canvas_rgb(driver, *_js(driver, f"annotate.toScreen({x + 0.5}, {y + 0.5})"))
    blue = _hex_rgb("#2979ff")
    assert np.abs(shown - (0.45 * _image_rgb(driver, x, y) + 0.55 * blue)).max() <= 3
    for sign in ("#00c853", "#ff1744"):  # far from both click colours
        assert np.abs(blue - _hex_rgb(sign)).max() >= 100

    # the finished object's cut-out: RGBA of its bounding box, opaque exactly on its mask, the photo's pixels there
    _keys(driver, Keys.SPACE)
    _wait(driver, "annotate.objects.length === 1")
    _keys(driver, Keys.TAB)
    _wait(driver, "annotate.selected === 0")
    href = driver.find_element(By.ID, "cutout").get_attribute("href")
    cut = np.asarray(Image.open(io.BytesIO(_get(href))))
    obj = server.api(f"/api/images/{third}/objects")[0]
    mask = png_mask(_get(f"{server.url}/api/images/{third}/objects/{obj['id']}/mask.png"))
    bx, by, bw, bh = obj["bbox"]
    assert cut.shape == (bh, bw, 4) and np.array_equal(cut[..., 3] > 0, mask[by:by + bh, bx:bx + bw])
    photo = np.asarray(Image.open(server.images / third).convert("RGB"))[by:by + bh, bx:bx + bw]
    assert np.abs(cut[..., :3].astype(int) - photo)[mask[by:by + bh, bx:bx + bw]].max() <= 2
