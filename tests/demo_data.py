"""Small fixed inputs for the inference, demo and export tests: a calibrated untrained checkpoint and images."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from fastapi import FastAPI
from fastapi.testclient import TestClient

from ifcn.trainer.core.checkpoint import save_checkpoint
from ifcn.trainer.demo.demo_app import DemoSettings
from ifcn.trainer.inference import Predictor
from ifcn.trainer.models import ModelConfig, build_model

#: The address the demo tests' servers bind and their requests name in `Host`: the demo's default, which it answers
#: (any other name is refused, against DNS rebinding).
DEMO_HOST = "127.0.0.1"
#: (height, width) of the demo test images: small, and not square so that x/y mix-ups show.
IMAGE_SIZE = (72, 96)


def sample_image(seed: int, size: tuple[int, int] = IMAGE_SIZE) -> np.ndarray:
    """A textured RGB image with a bright ellipse, deterministic per seed."""
    rng = np.random.default_rng(seed)
    h, w = size
    image = rng.integers(40, 120, (h, w, 3)).astype(np.uint8)
    cv2.ellipse(image, (w // 2, h // 2), (w // 4, h // 3), 20.0, 0, 360, (230, 200, 60), -1)
    return image


def write_images(folder: Path, count: int = 2, size: tuple[int, int] = IMAGE_SIZE) -> Path:
    """`count` JPEG test images of `size` named img-0.jpg, img-1.jpg, ... in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        bgr = cv2.cvtColor(sample_image(i, size), cv2.COLOR_RGB2BGR)
        ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])
        assert ok
        (folder / f"img-{i}.jpg").write_bytes(data.tobytes())
    return folder


def grey_png(width: int, height: int, rows: int | None = None) -> bytes:
    """A black 8-bit grey PNG of `width` x `height`, compressed row by row (13000² is ~170 KB, never 169 MB in
    memory); `rows` < `height` stores only that many rows: a file whose header claims more than it holds."""
    compressor = zlib.compressobj(9)
    row = bytes(width + 1)  # filter byte 0, then the pixels
    pixels = b"".join(compressor.compress(row) for _ in range(height if rows is None else rows)) + compressor.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def calibrated_model(backbone: str = "resnet18", prev_mask: bool = False) -> torch.nn.Module:
    """An untrained interactive FCN-8s ("mean" click-channel init, so clicks matter) whose last bias is shifted so
    that about half of a test image is foreground: masks in the tests are neither empty nor full. `prev_mask` adds
    the previous-prediction channel (initialised likewise, so the previous prediction matters too)."""
    config = ModelConfig(backbone=backbone, stride=8, in_channels=6 if prev_mask else 5, num_classes=1,
                         weights="none", first_layer_init="mean")
    model = build_model(config).eval()
    probability = Predictor(model, "interactive").predict(sample_image(0), [(36, 48, True)])
    median = float(np.median(probability))
    with torch.no_grad():
        model.head.score32.bias -= float(np.log(median / (1 - median)))
    return model


def make_demo_checkpoint(path: Path, backbone: str = "resnet18", prev_mask: bool = False) -> Path:
    """`calibrated_model` saved as an `ifcn-train` checkpoint of the interactive task."""
    model = calibrated_model(backbone, prev_mask)
    save_checkpoint(path, {"model_config": model.config.to_dict(), "task": "interactive",
                           "model": model.state_dict(), "manifest_id": "fixed"})
    return path


def demo_client(app: FastAPI) -> TestClient:
    """A test client of the demo app that sends `Host: DEMO_HOST` and gets 5xx as responses (not exceptions)."""
    return TestClient(app, base_url=f"http://{DEMO_HOST}", raise_server_exceptions=False)


def session_probs(predictor: Predictor, image: np.ndarray, clicks: list, **kwargs: Any) -> np.ndarray:
    """The Predictor called as the demo calls it: each click's prediction fed to the next (zoom-in, by default on,
    finds the object in it)."""
    prev = None
    for k in range(1, len(clicks) + 1):
        prev = predictor.predict(image, clicks[:k], prev=prev, zoom=DemoSettings().zoom, **kwargs)
    return prev
