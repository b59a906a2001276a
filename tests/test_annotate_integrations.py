"""Contract tests of the CVAT interactor and the Label Studio ML backend: the request and response shapes of the
tools' own public code (CVAT's serverless interactors; label-studio-ml's /health, /setup, /predict), the brush RLE
decoded by Label Studio's own converter (`label_studio_converter.brush.decode_rle`)."""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType, SimpleNamespace

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from ifcn.trainer.annotate.drafts import predict_mask
from ifcn.trainer.annotate.labelstudio import BackendSettings, create_labelstudio_app
from ifcn.trainer.annotate.lsrle import encode_brush_rle
from ifcn.trainer.core.clicks import Click
from ifcn.trainer.inference import Predictor
from tests.demo_data import make_demo_checkpoint, sample_image

NUCLIO = Path(__file__).resolve().parents[1] / "serverless" / "ifcn" / "nuclio"
SIZE = (120, 160)
LABEL_CONFIG = """<View>
  <Image name="image" value="$image" zoom="true"/>
  <BrushLabels name="tag" toName="image"><Label value="cat"/><Label value="dog"/></BrushLabels>
  <KeyPointLabels name="tag2" toName="image" smart="true"><Label value="dog" smart="true"/></KeyPointLabels>
</View>"""


def _label_studio_brush() -> ModuleType:
    """`label_studio_converter.brush` as Label Studio ships it (0.0.59), from the copy `scripts/env.sh` installs into
    `.venv/opt/` (off sys.path: the package's top-level `tests` package would shadow this project's)."""
    path = Path(sys.prefix) / "opt" / "label-studio-converter" / "label_studio_converter" / "brush.py"
    if not path.is_file():
        message = f"Label Studio's converter is not at {path}: run `bash scripts/env.sh` (it installs it there)"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    spec = importlib.util.spec_from_file_location("label_studio_brush", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def decode_rle() -> Callable[[list[int]], np.ndarray]:
    """Label Studio's own decoder: RLE bytes → the flat uint8 values (height × width × 4, RGBA)."""
    return _label_studio_brush().decode_rle


@pytest.fixture(scope="module")
def predictor(tmp_path_factory: pytest.TempPathFactory) -> Predictor:
    return Predictor.from_checkpoint(make_demo_checkpoint(tmp_path_factory.mktemp("ck") / "ck.pt"), device="cpu")


def _png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def test_the_rle_round_trips_runs_of_every_length(decode_rle: Callable[[list[int]], np.ndarray]) -> None:
    mask = np.zeros((300, 400), bool)
    mask[50:250, 10:390] = True  # runs longer than the widest length field (65536 values)
    mask[0, ::2] = True  # runs of one pixel
    values = decode_rle(encode_brush_rle(mask)).reshape(300, 400, 4)
    assert np.array_equal(values, np.repeat(mask[..., None].astype(np.uint8) * 255, 4, axis=2))


def test_cvat_nuclio_handler(predictor: Predictor) -> None:
    spec = importlib.util.spec_from_file_location("ifcn_nuclio_main", NUCLIO / "main.py")
    main = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(main)
    context = SimpleNamespace(user_data=SimpleNamespace(predictor=predictor, max_side=1024),
                              logger=SimpleNamespace(info=print),
                              Response=lambda **kw: SimpleNamespace(**kw))
    image = sample_image(3, SIZE)
    body = {"image": base64.b64encode(_png(image)).decode(), "pos_points": [[80.0, 60.0]], "neg_points": [[5, 5]],
            "threshold": 0.5}
    response = main.handler(context, SimpleNamespace(body=body))
    assert response.status_code == 200 and response.content_type == "application/json"
    answer = json.loads(response.body)
    mask = np.array(answer["mask"], np.uint8)
    expected = predict_mask(predictor, image, [Click(60, 80, True), Click(5, 5, False)], 1024, 0.5)
    assert mask.shape == SIZE and set(np.unique(mask)) <= {0, 255} and np.array_equal(mask > 0, expected)
    points = np.array(answer["points"])
    assert points.ndim == 2 and points.shape[1] == 2 and len(points) >= 3
    assert (points[:, 0] < SIZE[1]).all() and (points[:, 1] < SIZE[0]).all() and mask[points[:, 1], points[:, 0]].all()
    bad = main.handler(context, SimpleNamespace(body=json.dumps({**body, "pos_points": [[500, 5]]})))
    assert bad.status_code == 400 and "outside the 160x120 image" in json.loads(bad.body)["error"]


def test_label_studio_backend(predictor: Predictor, tmp_path: Path,
                              decode_rle: Callable[[list[int]], np.ndarray]) -> None:
    image = sample_image(4, SIZE)
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.png").write_bytes(_png(image))
    settings = BackendSettings(files_root=tmp_path, model_version="v1", allowed_hosts=frozenset({"testserver"}))
    client = TestClient(create_labelstudio_app(predictor, settings))
    assert client.get("/health").json()["status"] == "UP"
    assert client.post("/setup", json={"project": "1.1700000000", "schema": LABEL_CONFIG}).json() == \
        {"model_version": "v1"}
    task = {"id": 7, "data": {"image": "/data/local-files/?d=photos/a.png"}}
    keypoint = {"original_width": SIZE[1], "original_height": SIZE[0], "image_rotation": 0, "from_name": "tag2",
                "to_name": "image", "type": "keypointlabels", "is_positive": True,
                "value": {"x": 50.0, "y": 50.0, "width": 0.6, "keypointlabels": ["dog"]}}
    negative = {**keypoint, "is_positive": False, "value": {**keypoint["value"], "x": 2.0, "y": 2.0}}
    body = {"tasks": [task], "label_config": LABEL_CONFIG, "project": "1.1700000000",
            "params": {"login": None, "password": None, "context": {"result": [keypoint, negative]}}}
    results = client.post("/predict", json=body).json()["results"]
    assert len(results) == 1 and results[0]["model_version"] == "v1"
    (region,) = results[0]["result"]
    assert (region["type"], region["from_name"], region["to_name"]) == ("brushlabels", "tag", "image")
    assert region["value"]["format"] == "rle" and region["value"]["brushlabels"] == ["dog"]
    assert (region["original_width"], region["original_height"]) == (SIZE[1], SIZE[0])
    decoded = decode_rle(region["value"]["rle"]).reshape(*SIZE, 4)[..., 3] > 0
    expected = predict_mask(predictor, image, [Click(60, 80, True), Click(2, 3, False)], 1024, 0.5)
    assert np.array_equal(decoded, expected)
    assert client.post("/predict", json={**body, "params": {}}).json() == {"results": []}
    outside = {**body, "tasks": [{"data": {"image": "/data/local-files/?d=../secret.png"}}]}
    response = client.post("/predict", json=outside)
    assert response.status_code == 400 and "no such file under --files-root" in response.text
