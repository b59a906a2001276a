"""The annotation API without a browser: objects with labels saved at once and reopened, select / relabel / delete /
redo, undo/redo of clicks and strokes, two tabs on one image, superseded clicks, full-size masks of a large image,
bad input (4xx with a message)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ifcn.trainer.annotate.project_labels import DEFAULT_LABELS, read_labels
from ifcn.trainer.annotate.store import ProjectStore
from ifcn.trainer.evaluation.eval_cli import main
from ifcn.trainer.inference import Predictor
from tests.annotate_data import add_object, annotate_client, data_url_mask, ok, png_mask
from tests.demo_data import make_demo_checkpoint, write_images


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("annotate_api")
    checkpoint = make_demo_checkpoint(root / "interactive.pt")
    return {"root": root, "images": write_images(root / "images", 2, (120, 160)), "checkpoint": checkpoint,
            "predictor": Predictor.from_checkpoint(checkpoint, device="cpu")}


def test_objects_are_saved_at_once_and_reopened_with_their_labels(setup: dict, tmp_path: Path) -> None:
    client = annotate_client(setup["predictor"], setup["images"], tmp_path / "project")
    cat = add_object(client, "img-0.jpg", "cat", [(80, 60, True)])
    stroke = {"points": [[5, 5], [30, 5]], "radius": 3, "erase": False}
    dog = add_object(client, "img-0.jpg", "dog", [(20, 20, True)], [stroke])
    files = sorted((tmp_path / "project" / "objects" / "img-0.jpg").glob("*.json"))
    assert [p.stem for p in files] == sorted([cat["id"], dog["id"]])  # on disk before any shutdown
    assert not any(p.name.startswith(".tmp-") for p in files[0].parent.iterdir())

    reopened = annotate_client(setup["predictor"], setup["images"], tmp_path / "project")  # a restart
    listed = ok(reopened.get("/api/images/img-0.jpg/objects"))
    assert [(o["id"], o["label"]) for o in listed] == [(cat["id"], "cat"), (dog["id"], "dog")]  # paint order
    dog_mask = png_mask(reopened.get(f"/api/images/img-0.jpg/objects/{dog['id']}/mask.png").content)
    assert dog_mask.shape == (120, 160) and dog_mask[5, 5:31].all()  # the brush stroke is part of it
    project = ok(reopened.get("/api/project"))
    assert project["labels"] == list(DEFAULT_LABELS) and project["total"] == 2
    assert [(r["name"], r["objects"]) for r in project["images"]] == [("img-0.jpg", 2), ("img-1.jpg", 0)]
    ok(reopened.put("/api/images/img-0.jpg/done", json={"done": True}))
    assert ok(reopened.get("/api/project"))["done"] == 1


def test_relabel_delete_redo_and_cutout(setup: dict, tmp_path: Path) -> None:
    client = annotate_client(setup["predictor"], setup["images"], tmp_path / "p")
    obj = add_object(client, "img-1.jpg", "cat", [(80, 60, True), (10, 10, False)])
    assert ok(client.patch(f"/api/images/img-1.jpg/objects/{obj['id']}", json={"label": "cow"}))["label"] == "cow"
    redo = ok(client.post("/api/drafts", json={"image": "img-1.jpg", "object": obj["id"]}))
    assert redo["editing"] == obj["id"] and redo["label"] == "cow" and len(redo["clicks"]) == 2
    before = png_mask(client.get(f"/api/images/img-1.jpg/objects/{obj['id']}/mask.png").content)
    assert np.array_equal(data_url_mask(redo["mask"]), before)  # replaying gives the saved mask
    ok(client.post(f"/api/drafts/{redo['id']}/strokes", json={"points": [[80, 60]], "radius": 8, "erase": True}))
    edited = ok(client.post(f"/api/drafts/{redo['id']}/finish"))["object"]
    assert (edited["id"], edited["created"]) == (obj["id"], obj["created"]) and edited["area"] < obj["area"]
    cut = client.get(f"/api/images/img-1.jpg/objects/{obj['id']}/cutout.png")
    assert cut.status_code == 200 and cut.headers["content-type"] == "image/png"
    assert len(ok(client.get("/api/images/img-1.jpg/objects"))) == 1
    assert client.delete(f"/api/images/img-1.jpg/objects/{obj['id']}").status_code == 204
    assert ok(client.get("/api/images/img-1.jpg/objects")) == []
    assert client.delete(f"/api/images/img-1.jpg/objects/{obj['id']}").status_code == 404


def test_undo_redo_of_clicks_and_strokes(setup: dict, tmp_path: Path) -> None:
    client = annotate_client(setup["predictor"], setup["images"], tmp_path / "p")
    draft = ok(client.post("/api/drafts", json={"image": "img-0.jpg"}))
    url = f"/api/drafts/{draft['id']}"
    one = ok(client.post(url + "/clicks", json={"x": 80, "y": 60}))
    erased = ok(client.post(url + "/strokes", json={"points": [[80, 60]], "radius": 10, "erase": True}))
    assert erased["area"] < one["area"]
    undone = ok(client.post(url + "/undo"))
    assert undone["area"] == one["area"] and undone["can_redo"]
    assert ok(client.post(url + "/redo"))["area"] == erased["area"]
    assert ok(client.post(url + "/reset"))["area"] == 0
    assert client.post(url + "/finish").status_code == 409  # empty: nothing saved


def test_two_tabs_on_one_image_keep_both_objects(setup: dict, tmp_path: Path) -> None:
    client = annotate_client(setup["predictor"], setup["images"], tmp_path / "p")
    tabs = [ok(client.post("/api/drafts", json={"image": "img-0.jpg", "label": label})) for label in ("cat", "dog")]
    for tab, x in zip(tabs, (40, 120), strict=True):
        ok(client.post(f"/api/drafts/{tab['id']}/clicks", json={"x": x, "y": 60}))
    for tab in tabs:
        ok(client.post(f"/api/drafts/{tab['id']}/finish"))
    assert sorted(o["label"] for o in ok(client.get("/api/images/img-0.jpg/objects"))) == ["cat", "dog"]


class GatedPredictor:
    """Wraps a predictor; its first call waits until the test opens the gate; counts calls."""

    def __init__(self, predictor: Predictor) -> None:
        self.inner, self.calls, self.entered, self.gate = predictor, 0, threading.Event(), threading.Event()
        self.task, self.prev_mask = predictor.task, predictor.prev_mask

    def predict(self, *args, **kwargs) -> np.ndarray:
        self.calls += 1
        self.entered.set()
        self.gate.wait(30)
        return self.inner.predict(*args, **kwargs)


def test_newer_clicks_supersede_waiting_ones(setup: dict, tmp_path: Path) -> None:
    gated = GatedPredictor(setup["predictor"])
    # Without zoom-in (with it, the click after a superseded one needs that one's prediction to find the object).
    client = annotate_client(gated, setup["images"], tmp_path / "p", zoom_in=0)
    url = "/api/drafts/" + ok(client.post("/api/drafts", json={"image": "img-0.jpg"}))["id"]
    answers: dict[int, dict] = {}

    def click(i: int, x: int) -> None:
        answers[i] = ok(client.post(url + "/clicks", json={"x": x, "y": 60}))

    first = threading.Thread(target=click, args=(0, 80))
    first.start()
    assert gated.entered.wait(30)  # the first click is in the network
    second = threading.Thread(target=click, args=(1, 70))
    second.start()
    while ok(client.get(url))["version"] < 2:
        pass
    third = threading.Thread(target=click, args=(2, 60))
    third.start()
    while ok(client.get(url))["version"] < 3:
        pass
    gated.gate.set()
    for t in (first, second, third):
        t.join(60)
    assert answers[0]["superseded"] and answers[1]["superseded"] and not answers[2]["superseded"]
    assert len(answers[2]["clicks"]) == 3
    assert gated.calls == 2  # click 1 (held at the gate), then the three clicks at once: click 2 never ran


def test_a_large_image_is_predicted_small_and_masked_at_full_size(setup: dict, tmp_path: Path) -> None:
    images = write_images(tmp_path / "big", 1, (300, 400))
    client = annotate_client(setup["predictor"], images, tmp_path / "p", max_side=100)
    draft = ok(client.post("/api/drafts", json={"image": "img-0.jpg"}))
    state = ok(client.post(f"/api/drafts/{draft['id']}/clicks", json={"x": 399, "y": 299}))
    assert (state["width"], state["height"]) == (400, 300) and data_url_mask(state["mask"]).shape == (300, 400)


def test_overlays_come_at_a_bounded_size_and_saved_masks_at_full_size(setup: dict, tmp_path: Path) -> None:
    images = write_images(tmp_path / "big", 1, (300, 400))
    client = annotate_client(setup["predictor"], images, tmp_path / "p", max_side=200, overlay_side=100)
    draft = ok(client.post("/api/drafts", json={"image": "img-0.jpg"}))
    url = f"/api/drafts/{draft['id']}"
    ok(client.post(url + "/clicks", json={"x": 200, "y": 150}))
    state = ok(client.post(url + "/clicks", json={"x": 220, "y": 160}))  # a zoomed-in click
    assert data_url_mask(state["mask"]).shape == (75, 100)
    obj = ok(client.post(url + "/finish"))["object"]
    full = png_mask(client.get(f"/api/images/img-0.jpg/objects/{obj['id']}/mask.png").content)
    assert full.shape == (300, 400) and int(full.astype(bool).sum()) == obj["area"] == state["area"]


@pytest.mark.parametrize("method, url, body, status, words", [
    ("post", "/api/drafts", {"image": "../secret.jpg"}, 404, "no image named"),
    ("post", "/api/drafts", {"image": "img-0.jpg", "label": "unicorn"}, 422, "unknown label"),
    ("post", "/api/drafts/nope/clicks", {"x": 1, "y": 1}, 404, "unknown or expired draft"),
    ("get", "/api/images/img-0.jpg/objects/0123abcd/mask.png", None, 404, "has no object"),
])
def test_bad_requests_get_a_4xx_with_a_message(setup: dict, tmp_path: Path, method: str, url: str, body: dict | None,
                                                status: int, words: str) -> None:
    client = annotate_client(setup["predictor"], setup["images"], tmp_path / "p")
    response = getattr(client, method)(url, **({"json": body} if body is not None else {}))
    assert response.status_code == status and words in response.text


def test_a_click_outside_the_image_is_refused(setup: dict, tmp_path: Path) -> None:
    client = annotate_client(setup["predictor"], setup["images"], tmp_path / "p")
    draft = ok(client.post("/api/drafts", json={"image": "img-0.jpg"}))
    response = client.post(f"/api/drafts/{draft['id']}/clicks", json={"x": 160, "y": 0})
    assert response.status_code == 422 and "outside the 160x120 image" in response.text


def test_labels_files_and_reopening_with_other_labels(setup: dict, tmp_path: Path) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("\ufeff# mine\nleaf\n\nstem\r\n")
    assert read_labels(labels) == ("leaf", "stem")
    ProjectStore(tmp_path / "p", setup["images"], read_labels(labels))
    assert json.loads((tmp_path / "p" / "project.json").read_text())["labels"] == ["leaf", "stem"]
    assert ProjectStore(tmp_path / "p", setup["images"], None).labels == ("leaf", "stem")
    with pytest.raises(ValueError, match="annotated with the labels"):
        ProjectStore(tmp_path / "p", setup["images"], ("cat",))
    labels.write_text("cat\ncat\n")
    result = CliRunner().invoke(main, ["annotate", "--checkpoint", str(setup["checkpoint"]), "--images",
                                       str(setup["images"]), "--out", str(tmp_path / "q"), "--labels", str(labels)])
    assert result.exit_code != 0 and "listed twice" in result.output


def test_the_demo_protections_guard_the_annotation_api(setup: dict, tmp_path: Path) -> None:
    client = annotate_client(setup["predictor"], setup["images"], tmp_path / "p")
    rebinding = client.get("/api/project", headers={"Host": "attacker.example"})
    assert rebinding.status_code == 400 and "--allowed-host" in rebinding.text
    foreign = client.post("/api/drafts", json={"image": "img-0.jpg"}, headers={"Origin": "http://attacker.example"})
    assert foreign.status_code == 403
    huge = client.post("/api/drafts", content=b"{" + b" " * (5 * 2**20) + b"}",
                       headers={"Content-Type": "application/json"})
    assert huge.status_code == 413
