"""Shared by the annotation tests: a project served through the API, and annotating objects through it."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import numpy as np
from fastapi.testclient import TestClient
from PIL import Image

from ifcn.trainer.annotate.annotate_app import AnnotateSettings, create_annotate_app
from ifcn.trainer.annotate.store import ProjectStore
from ifcn.trainer.inference import Predictor


def annotate_client(predictor: Predictor, images: Path, out: Path, max_side: int = 1024,
                    zoom_in: int = 400, overlay_side: int = 2048) -> TestClient:
    store = ProjectStore(out, images, None)
    settings = AnnotateSettings(max_side=max_side, allowed_hosts=frozenset({"testserver"}), zoom_in=zoom_in,
                                overlay_side=overlay_side)
    return TestClient(create_annotate_app(predictor, store, settings), raise_server_exceptions=False)


def ok(response: Any) -> Any:
    assert response.status_code < 300, response.text
    return response.json() if response.content else None


def data_url_mask(url: str) -> np.ndarray:
    """The bool mask of a draft's alpha-PNG data URL."""
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))[..., 3] > 0


def png_mask(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data))) > 0


def add_object(client: TestClient, image: str, label: str, clicks: list[tuple[int, int, bool]],
               strokes: list[dict[str, Any]] = ()) -> dict[str, Any]:
    """Open a draft, click (x, y, positive), brush, finish; returns the finished object's info."""
    draft = ok(client.post("/api/drafts", json={"image": image, "label": label}))
    for x, y, positive in clicks:
        ok(client.post(f"/api/drafts/{draft['id']}/clicks", json={"x": x, "y": y, "positive": positive}))
    for stroke in strokes:
        ok(client.post(f"/api/drafts/{draft['id']}/strokes", json=stroke))
    return ok(client.post(f"/api/drafts/{draft['id']}/finish"))["object"]
