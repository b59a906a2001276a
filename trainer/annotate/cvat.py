"""A CVAT serverless interactor (nuclio function: `serverless/ifcn/nuclio/`): the request and response of CVAT's own
interactor functions (its HRNet and SAM ones).

Request body: `image` (base64 of the frame's encoded bytes), `pos_points` and `neg_points` (lists of [x, y] pixels),
optional `threshold` (default 0.5). Response: `mask`, the full-size mask as rows of 0/255, and `points`, the outer
polygon of its largest part as [[x, y], ...] (empty for an empty mask).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import cv2
import numpy as np

from ifcn.cli_options import MAX_SIDE
from ifcn.trainer.annotate.drafts import predict_mask
from ifcn.trainer.core.clicks import Click
from ifcn.trainer.inference import Predictor
from ifcn.trainer.inference.images import decode_user_photo


def mask_polygon(mask: np.ndarray) -> list[list[int]]:
    """The outer contour of the mask's largest connected part, [[x, y], ...]; [] when empty or degenerate."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return []
    largest = max(contours, key=cv2.contourArea).reshape(-1, 2)
    return [[int(x), int(y)] for x, y in largest] if len(largest) >= 3 else []


def points_as_clicks(points: Any, positive: bool, size: tuple[int, int], field: str) -> list[Click]:
    """[[x, y], ...] (floats allowed) as clicks; a ValueError naming `field` for anything else or outside the image."""
    h, w = size
    if not isinstance(points, list):
        raise ValueError(f"{field} must be a list of [x, y] points")
    clicks = []
    for point in points:
        if not (isinstance(point, list | tuple) and len(point) == 2):
            raise ValueError(f"{field}: {point!r} is not an [x, y] point")
        x, y = int(float(point[0])), int(float(point[1]))
        if not (0 <= x < w and 0 <= y < h):
            raise ValueError(f"{field}: point [{x}, {y}] lies outside the {w}x{h} image")
        clicks.append(Click(y, x, positive))
    return clicks


def interact(predictor: Predictor, body: dict[str, Any], max_side: int = MAX_SIDE) -> dict[str, Any]:
    """Answer one CVAT interactor request (see the module docstring); bad requests raise ValueError."""
    try:
        data = base64.b64decode(body["image"], validate=True)
    except (KeyError, TypeError, binascii.Error):
        raise ValueError("the request needs `image`: the frame's bytes in base64") from None
    image = decode_user_photo(data, "image").rgb
    clicks = points_as_clicks(body.get("pos_points", []), True, image.shape[:2], "pos_points") \
        + points_as_clicks(body.get("neg_points", []), False, image.shape[:2], "neg_points")
    if not any(c.positive for c in clicks):
        raise ValueError("pos_points is empty: the interactor needs at least one positive point")
    threshold = float(body.get("threshold", 0.5))
    mask = predict_mask(predictor, image, clicks, max_side, threshold)
    return {"mask": (mask.astype(np.uint8) * 255).tolist(), "points": mask_polygon(mask)}
