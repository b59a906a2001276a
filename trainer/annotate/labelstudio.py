"""A Label Studio ML backend (`ifcn-eval label-studio-backend`): interactive pre-annotation with smart keypoints.

The routes and bodies are those of Label Studio's `label-studio-ml` server: `GET /health` (and `/`) answers
`{"status": "UP", ...}`; `POST /setup` (`project`, `schema`) answers the model version; `POST /predict` gets `tasks`,
`label_config` and `params.context.result`, the keypoints the user placed (type `keypointlabels`, `value.x` / `value.y`
in percent of `original_width` / `original_height`, `is_positive`: false for a negative one, default true), and
answers `{"results": [{"result": [brush region], "score", "model_version"}]}`: one `brushlabels` region whose
`value.rle` is the mask in Label Studio's own RLE (`lsrle`), labelled with the keypoint's label when the BrushLabels
tag has it, else with its first label. Without keypoints it answers no prediction (`{"results": []}`).

Task images are read from `/data/local-files/?d=PATH` under `--files-root` (Label Studio's local storage) or fetched
over HTTP from `--label-studio-url` with `--api-key` (uploads: `/data/upload/...`).
"""

from __future__ import annotations

import secrets
import threading
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from fastapi import FastAPI, HTTPException

from ifcn.cli_options import MAX_SIDE
from ifcn.errors import InputError
from ifcn.trainer.annotate.annotate_app import guard
from ifcn.trainer.annotate.drafts import predict_mask
from ifcn.trainer.annotate.lsrle import encode_brush_rle
from ifcn.trainer.core.clicks import Click
from ifcn.trainer.inference import Predictor
from ifcn.trainer.inference.images import decode_user_photo
from ifcn.trainer.web.hosts import allowed_hosts

LOCAL_FILES = "/data/local-files/"
MAX_IMAGE_BYTES = 64 * 2**20


@dataclass(frozen=True)
class BackendSettings:
    """Where task images come from, the inference size, the mask threshold, the version Label Studio shows."""

    files_root: Path | None = None
    label_studio_url: str | None = None
    api_key: str | None = None
    max_side: int = MAX_SIDE
    threshold: float = 0.5
    model_version: str = "ifcn"
    allowed_hosts: frozenset[str] = allowed_hosts("127.0.0.1")


@dataclass(frozen=True)
class BrushTag:
    """The BrushLabels tag of a labelling config: its name, the Image it labels, that image's data key, labels."""

    from_name: str
    to_name: str
    data_key: str
    labels: tuple[str, ...]


def brush_tag(label_config: str) -> BrushTag:
    """The first BrushLabels tag of the config and its Image; a ValueError if the config has none."""
    try:
        root = ET.fromstring(label_config)
    except ET.ParseError as e:
        raise ValueError(f"label_config is not valid XML ({e})") from None
    brush = next(root.iter("BrushLabels"), None)
    if brush is None:
        raise ValueError("the labelling config has no <BrushLabels> tag: add one (toName = the Image) for masks")
    image = next((t for t in root.iter("Image") if t.get("name") == brush.get("toName")), None)
    if image is None or not (image.get("value") or "").startswith("$"):
        raise ValueError(f"no <Image name={brush.get('toName')!r} value=\"$...\"> for the BrushLabels tag")
    labels = tuple(t.get("value", "") for t in brush.iter("Label"))
    return BrushTag(brush.get("name", ""), brush.get("toName", ""), image.get("value", "")[1:], labels)


def read_task_image(url: str, settings: BackendSettings) -> bytes:
    """The bytes of a task's image URL (see the module docstring)."""
    parsed = urllib.parse.urlparse(url)
    if parsed.path == LOCAL_FILES.rstrip("/") or parsed.path == LOCAL_FILES:
        if settings.files_root is None:
            raise ValueError(f"{url}: a local-files image; start the backend with --files-root (Label Studio's "
                             "LOCAL_FILES_DOCUMENT_ROOT)")
        relative = urllib.parse.parse_qs(parsed.query).get("d", [""])[0]
        root = Path(settings.files_root).resolve()
        path = (root / relative).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            raise ValueError(f"{url}: no such file under --files-root {root}")
        return path.read_bytes()
    if not parsed.scheme:
        if settings.label_studio_url is None:
            raise ValueError(f"{url}: an upload of Label Studio; start the backend with --label-studio-url and "
                             "--api-key")
        url = settings.label_studio_url.rstrip("/") + "/" + url.lstrip("/")
    if urllib.parse.urlparse(url).scheme not in ("http", "https"):
        raise ValueError(f"{url}: only http(s) and local-files image URLs are read")
    headers = {"Authorization": f"Token {settings.api_key}"} if settings.api_key else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as response:
        data = response.read(MAX_IMAGE_BYTES + 1)
    if len(data) > MAX_IMAGE_BYTES:
        raise ValueError(f"{url}: larger than {MAX_IMAGE_BYTES >> 20} MB")
    return data


def keypoint_clicks(context: dict[str, Any], size: tuple[int, int]) -> tuple[list[Click], str | None]:
    """The context's keypoints as clicks on an image of (height, width) `size`, and the label of the last one."""
    h, w = size
    clicks, label = [], None
    for region in context.get("result") or []:
        if region.get("type") != "keypointlabels":
            continue
        value = region["value"]
        x = min(max(int(value["x"] * w / 100), 0), w - 1)
        y = min(max(int(value["y"] * h / 100), 0), h - 1)
        clicks.append(Click(y, x, bool(region.get("is_positive", True))))
        label = (value.get("keypointlabels") or [label])[0]
    return clicks, label


def predict_task(predictor: Predictor, task: dict[str, Any], label_config: str, context: dict[str, Any],
                 settings: BackendSettings) -> dict[str, Any] | None:
    """One task's prediction (a brush region), or None when the context has no positive keypoint."""
    tag = brush_tag(label_config)
    url = task.get("data", {}).get(tag.data_key)
    if not isinstance(url, str):
        raise ValueError(f"the task has no data.{tag.data_key} (the Image tag's value)")
    image = decode_user_photo(read_task_image(url, settings), url).rgb
    clicks, keypoint_label = keypoint_clicks(context, image.shape[:2])
    if not any(c.positive for c in clicks):
        return None
    mask = predict_mask(predictor, image, clicks, settings.max_side, settings.threshold)
    regions = [r for r in context.get("result") or [] if r.get("type") == "keypointlabels"]
    width = int(regions[0].get("original_width", image.shape[1]))
    height = int(regions[0].get("original_height", image.shape[0]))
    if (height, width) != mask.shape:  # Label Studio's idea of the size wins: the RLE must fill its canvas
        mask = cv2.resize(mask.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST).astype(bool)
    label = keypoint_label if keypoint_label in tag.labels else (tag.labels[0] if tag.labels else None)
    region = {"id": secrets.token_hex(5), "from_name": tag.from_name, "to_name": tag.to_name, "type": "brushlabels",
              "original_width": width, "original_height": height, "image_rotation": 0, "readonly": False,
              "value": {"format": "rle", "rle": encode_brush_rle(mask), "brushlabels": [label] if label else []}}
    return {"result": [region], "score": 1.0, "model_version": settings.model_version}


def create_labelstudio_app(predictor: Predictor, settings: BackendSettings | None = None) -> FastAPI:
    """The ML backend's ASGI app for an interactive `predictor`."""
    settings = settings or BackendSettings()
    lock = threading.Lock()
    app = FastAPI(title="ifcn Label Studio ML backend", docs_url=None, redoc_url=None)
    guard(app, settings.allowed_hosts, same_origin=False)  # Label Studio's server calls it, not a browser

    @app.get("/")
    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "UP", "model_class": "ifcn", "model_version": settings.model_version}

    @app.post("/setup")
    def setup(body: dict[str, Any]) -> dict[str, Any]:
        if body.get("schema"):
            try:
                brush_tag(body["schema"])
            except ValueError as e:
                raise HTTPException(400, str(e)) from None
        return {"model_version": settings.model_version}

    @app.post("/predict")
    def predict(body: dict[str, Any]) -> dict[str, Any]:
        context = (body.get("params") or {}).get("context") or {}
        results = []
        try:
            for task in body.get("tasks") or []:
                with lock:
                    prediction = predict_task(predictor, task, body.get("label_config") or "", context, settings)
                if prediction is not None:
                    results.append(prediction)
        except (ValueError, InputError) as e:
            raise HTTPException(400, str(e)) from None
        return {"results": results}

    return app
