"""The demo's HTTP API without a browser: the click flow against `Predictor.predict`, sessions, and every bad input
(each a 4xx with a message, never a 500), path traversal, the semantic checkpoint, the 127.0.0.1 default."""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from PIL import Image

from ifcn.trainer.demo.demo_app import DemoSettings, create_app
from ifcn.trainer.evaluation.eval_cli import main
from ifcn.trainer.inference import Predictor
from tests.demo_data import demo_client, make_demo_checkpoint, sample_image, session_probs, write_images
from tests.eval_data import make_checkpoint

if TYPE_CHECKING:  # a type only: the GPU machine's image, which runs `pytest -m cuda`, has no httpx2
    from httpx2 import Response


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("demo_api")
    images = write_images(root / "images")
    (root / "secret.jpg").write_bytes((images / "img-0.jpg").read_bytes())  # outside the folder
    (images / "notes.txt").write_text("not an image")
    os.symlink(root / "secret.jpg", images / "link.jpg")  # inside, but leads out
    checkpoint = make_demo_checkpoint(root / "interactive.pt")
    predictor = Predictor.from_checkpoint(checkpoint, device="cpu")
    return {"root": root, "images": images, "checkpoint": checkpoint, "predictor": predictor,
            "semantic": make_checkpoint(root / "semantic.pt", "semantic")}


@pytest.fixture
def client(setup: dict) -> TestClient:
    settings = DemoSettings(images=setup["images"], max_side=100, max_upload_mb=0.05)
    return demo_client(create_app(setup["predictor"], settings))


def _png(array: np.ndarray, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    return buffer.getvalue()


def _decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def _open(client: TestClient, name: str = "img-0.jpg") -> dict:
    response = client.post("/api/sessions", json={"image": name})
    assert response.status_code == 200, response.text
    return response.json()


def _error(response: Response, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    for word in words:
        assert word in str(detail), detail


def test_click_flow_matches_the_predictor(client: TestClient, setup: dict) -> None:
    assert client.get("/api/images").json() == {"images": ["img-0.jpg", "img-1.jpg"]}
    state = _open(client)
    assert (state["width"], state["height"], state["clicks"], state["prediction_ms"]) == (96, 72, [], None)
    sid = state["id"]
    image = _decode(client.get(f"/api/sessions/{sid}/image").content)
    assert image.shape == (72, 96, 3)
    clicks = [(30, 50, True), (10, 8, False), (50, 70, True)]
    for y, x, positive in clicks:
        state = client.post(f"/api/sessions/{sid}/clicks", json={"y": y, "x": x, "positive": positive}).json()
    assert [(c["y"], c["x"], c["positive"]) for c in state["clicks"]] == clicks
    assert state["prediction_ms"] > 0
    expected = session_probs(setup["predictor"], image, clicks) > 0.5
    assert 0 < expected.sum() < expected.size
    download = client.get(f"/api/sessions/{sid}/mask.png")
    assert download.headers["content-type"] == "image/png"
    assert 'filename="img-0-mask.png"' in download.headers["content-disposition"]
    np.testing.assert_array_equal(_decode(download.content), expected.astype(np.uint8) * 255)
    inline = base64.b64decode(state["mask"].split(",", 1)[1])
    np.testing.assert_array_equal(_decode(inline), expected.astype(np.uint8) * 255)

    state = client.post(f"/api/sessions/{sid}/undo").json()
    assert len(state["clicks"]) == 2
    np.testing.assert_array_equal(_decode(client.get(f"/api/sessions/{sid}/mask.png").content) > 0,
                                  session_probs(setup["predictor"], image, clicks[:2]) > 0.5)
    state = client.patch(f"/api/sessions/{sid}", json={"grabcut": True}).json()
    assert state["grabcut"] is True
    p1 = session_probs(setup["predictor"], image, clicks[:1])
    refined = setup["predictor"].predict(image, clicks[:2], prev=p1, zoom=DemoSettings().zoom, grabcut=True) > 0.5
    np.testing.assert_array_equal(_decode(client.get(f"/api/sessions/{sid}/mask.png").content) > 0, refined)
    state = client.post(f"/api/sessions/{sid}/reset").json()
    assert state["clicks"] == [] and not _decode(client.get(f"/api/sessions/{sid}/mask.png").content).any()
    assert client.delete(f"/api/sessions/{sid}").status_code == 204
    _error(client.get(f"/api/sessions/{sid}"), 404, "unknown or expired session")


def test_sessions_are_independent(client: TestClient) -> None:
    a, b = _open(client)["id"], _open(client, "img-1.jpg")["id"]
    client.post(f"/api/sessions/{a}/clicks", json={"y": 30, "x": 40, "positive": True})
    assert client.get(f"/api/sessions/{b}").json()["clicks"] == []
    assert len(client.get(f"/api/sessions/{a}").json()["clicks"]) == 1


def test_upload_and_downscaling_of_large_images(client: TestClient, setup: dict) -> None:
    big = sample_image(5, (90, 120))  # long side 120 > the fixture's --max-side 100
    response = client.post("/api/sessions/upload", files={"file": ("big photo.png", _png(big), "image/png")})
    assert response.status_code == 200, response.text
    state = response.json()
    assert (state["width"], state["height"], state["original_width"], state["original_height"]) == (100, 75, 120, 90)
    assert "shown and predicted at 100x75" in state["message"] and "photo's 120x90" in state["message"]
    state = client.post(f"/api/sessions/{state['id']}/clicks", json={"y": 74, "x": 99}).json()
    assert state["clicks"] == [{"y": 74, "x": 99, "positive": True}]
    download = client.get(f"/api/sessions/{state['id']}/mask.png")
    assert 'filename="big_photo-mask.png"' in download.headers["content-disposition"]
    shown = np.array(Image.open(io.BytesIO(base64.b64decode(state["mask"].split(",", 1)[1]))))
    full = np.array(Image.open(io.BytesIO(download.content)))
    assert shown.shape == (75, 100) and full.shape == (90, 120)  # the page's size, and the photo's own size
    assert abs(full.mean() / 255 - shown.mean() / 255) < 0.05


def test_bad_uploads_are_4xx_with_a_message(client: TestClient) -> None:
    _error(client.post("/api/sessions/upload", files={"file": ("a.jpg", b"hello, not an image", "image/jpeg")}),
           415, "not an image")
    jpeg = _png(sample_image(1), "JPEG")
    _error(client.post("/api/sessions/upload", files={"file": ("cut.jpg", jpeg[:len(jpeg) // 2], "image/jpeg")}),
           400, "cut.jpg", "corrupt or truncated")
    _error(client.post("/api/sessions/upload", files={"file": ("huge.bin", b"\0" * 60_000, "image/png")}),
           413, "larger than the server's limit")
    _error(client.post("/api/sessions/upload"), 422)
    assert client.get("/api/images").status_code == 200  # the server is still alive


def test_bad_requests_are_4xx_with_a_message(client: TestClient) -> None:
    sid = _open(client)["id"]
    for y, x in ((72, 0), (0, 96), (-1, 5), (5, -1)):
        _error(client.post(f"/api/sessions/{sid}/clicks", json={"y": y, "x": x, "positive": True}), 422,
               "outside the 96x72 image")
    _error(client.post(f"/api/sessions/{sid}/clicks", json={"y": "top", "x": 1}), 422)
    _error(client.post(f"/api/sessions/{sid}/clicks", json={"y": 1.5, "x": 1}), 422)
    assert client.get(f"/api/sessions/{sid}").json()["clicks"] == []
    for call in (lambda s: client.post(f"/api/sessions/{s}/clicks", json={"y": 1, "x": 1}),
                 lambda s: client.post(f"/api/sessions/{s}/undo"), lambda s: client.get(f"/api/sessions/{s}/image"),
                 lambda s: client.get(f"/api/sessions/{s}/mask.png"), lambda s: client.delete(f"/api/sessions/{s}"),
                 lambda s: client.patch(f"/api/sessions/{s}", json={"grabcut": True})):
        _error(call("no-such-session"), 404, "unknown or expired session")


def test_only_files_of_the_images_folder_are_served(client: TestClient, setup: dict) -> None:
    for name in ("../secret.jpg", "..%2Fsecret.jpg", str(setup["root"] / "secret.jpg"), "link.jpg", "notes.txt",
                 "", "img-0.jpg/..", "./img-0.jpg"):
        _error(client.post("/api/sessions", json={"image": name}), 404, "no image named")
    for path in ("/static/../app.py", "/static/%2e%2e/app.py", "/static/..%2Fapp.py"):
        assert client.get(path).status_code == 404
    assert "link.jpg" not in client.get("/api/images").json()["images"]


def test_page_and_openapi_are_served_offline(client: TestClient) -> None:
    page = client.get("/").text
    assert 'id="canvas"' in page and "http://" not in page and "https://" not in page
    script = client.get("/static/demo.js").text
    assert "contextmenu" in script and "http://" not in script and "https://" not in script
    spec = client.get("/openapi.json").json()
    paths = set(spec["paths"])
    assert {"/api/images", "/api/sessions", "/api/sessions/upload", "/api/sessions/{session_id}",
            "/api/sessions/{session_id}/clicks", "/api/sessions/{session_id}/undo",
            "/api/sessions/{session_id}/reset", "/api/sessions/{session_id}/mask.png"} <= paths
    assert client.get("/docs").status_code == 404  # Swagger UI would load assets from the internet


def test_without_an_images_folder_only_uploads_work(setup: dict) -> None:
    client = demo_client(create_app(setup["predictor"]))
    assert client.get("/api/images").json() == {"images": []}
    _error(client.post("/api/sessions", json={"image": "img-0.jpg"}), 404, "no --images folder")


def test_semantic_checkpoint_and_bad_settings_are_refused(setup: dict, tmp_path: Path) -> None:
    semantic = Predictor.from_checkpoint(setup["semantic"], device="cpu")
    with pytest.raises(ValueError, match=r"needs an interactive checkpoint.*ifcn-eval predict"):
        create_app(semantic)
    result = CliRunner().invoke(main, ["demo", "--checkpoint", str(setup["semantic"]), "--device", "cpu"])
    assert result.exit_code == 1 and "task 'semantic'" in result.output and "ifcn-eval predict" in result.output
    with pytest.raises(ValueError, match=r"--images .*not a folder"):
        DemoSettings(images=tmp_path / "missing")
    result = CliRunner().invoke(main, ["demo", "--checkpoint", str(setup["checkpoint"]), "--port", "0"])
    assert result.exit_code == 2 and "--port" in result.output


def test_binds_loopback_by_default() -> None:
    options = {p.name: p.default for p in main.commands["demo"].params}
    assert options["host"] == "127.0.0.1"


def test_a_prev_mask_model_sees_its_prediction_before_the_last_click(setup: dict) -> None:
    """As in training and NoC: click k is predicted with the probabilities of click k - 1; undo goes back."""
    predictor = Predictor.from_checkpoint(make_demo_checkpoint(setup["root"] / "prev.pt", prev_mask=True),
                                          device="cpu")
    client = demo_client(create_app(predictor, DemoSettings(images=setup["images"])))
    sid = _open(client)["id"]
    image = _decode(client.get(f"/api/sessions/{sid}/image").content)
    clicks = [(30, 50, True), (10, 8, False), (50, 70, True)]
    expected, prev = [], None
    for y, x, positive in clicks:
        client.post(f"/api/sessions/{sid}/clicks", json={"y": y, "x": x, "positive": positive})
        prev = predictor.predict(image, clicks[:len(expected) + 1], prev=prev, zoom=DemoSettings().zoom)
        expected.append(prev > 0.5)
        mask = _decode(client.get(f"/api/sessions/{sid}/mask.png").content) > 0
        np.testing.assert_array_equal(mask, expected[-1])
    assert not np.array_equal(expected[-1], predictor.predict(image, clicks) > 0.5)  # the history matters
    client.post(f"/api/sessions/{sid}/undo")
    np.testing.assert_array_equal(_decode(client.get(f"/api/sessions/{sid}/mask.png").content) > 0, expected[1])
    client.post(f"/api/sessions/{sid}/reset")
    y, x, positive = clicks[0]
    client.post(f"/api/sessions/{sid}/clicks", json={"y": y, "x": x, "positive": positive})
    np.testing.assert_array_equal(_decode(client.get(f"/api/sessions/{sid}/mask.png").content) > 0, expected[0])
