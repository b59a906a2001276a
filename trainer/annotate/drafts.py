"""The object in progress of one browser tab (a draft): its image, clicks, brush strokes, undo/redo, current mask.

Drafts live in memory only: a restart loses at most the object in progress; finishing one writes it to the project
(`store`). The network sees the image at a bounded size (`max_side`, long side) so that a click on a large photo
stays interactive; the probabilities are resized back, so masks are always at the photo's full size. Brush strokes
then add or erase pixels at full size, in order, on top of the prediction.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from ifcn.trainer.core.clicks import Click
from ifcn.trainer.inference import Predictor
from ifcn.trainer.inference.images import fit_size, full_size
from ifcn.trainer.inference.zoom import ZoomSettings
from ifcn.trainer.web.lru import LruStore


@dataclass
class Draft:
    """`actions` are clicks `{"x", "y", "positive"}` and strokes `{"points": [[x, y], ...], "radius", "erase"}` in
    full-size image pixels; `undone` is the redo stack. `probs[i]` holds the (small) probabilities after click i + 1
    (None if never needed), so undoing a stroke never re-runs the network and a `--prev-mask` network sees its
    previous prediction."""

    id: str
    image_name: str
    image: np.ndarray
    small: np.ndarray
    label: str
    editing: str | None = None
    actions: list[dict[str, Any]] = field(default_factory=list)
    undone: list[dict[str, Any]] = field(default_factory=list)
    probs: list[np.ndarray | None] = field(default_factory=list, repr=False)
    version: int = 0
    prediction_ms: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def size(self) -> tuple[int, int]:
        return self.image.shape[0], self.image.shape[1]

    def clicks(self) -> list[dict[str, Any]]:
        return [a for a in self.actions if "points" not in a]

    def small_clicks(self) -> list[Click]:
        """The clicks in pixels of the inference image."""
        clicks = [Click(int(c["y"]), int(c["x"]), bool(c["positive"])) for c in self.clicks()]
        return scaled_clicks(clicks, self.size, self.small.shape[:2])


def scaled_clicks(clicks: list[Click], size: tuple[int, int], small: tuple[int, int]) -> list[Click]:
    """Clicks in pixels of a (height, width) `size` image, moved onto its `small` copy."""
    (h, w), (sh, sw) = size, small
    return [Click(min(int(c.y * sh / h), sh - 1), min(int(c.x * sw / w), sw - 1), c.positive) for c in clicks]


def predict_mask(predictor: Predictor, image: np.ndarray, clicks: list[Click], max_side: int,
                 threshold: float) -> np.ndarray:
    """One-shot prediction for a stateless caller (CVAT, Label Studio): the full-size bool mask of `clicks`."""
    small = small_image(image, max_side)
    probs = predictor.predict(small, scaled_clicks(clicks, image.shape[:2], small.shape[:2]))
    return full_size(probs, image.shape[:2]) > threshold


def small_image(image: np.ndarray, max_side: int) -> np.ndarray:
    """The image with its long side at most `max_side` (area filter), or the image itself."""
    h, w = image.shape[:2]
    th, tw = fit_size(h, w, max_side)
    return image if (th, tw) == (h, w) else cv2.resize(image, (tw, th), interpolation=cv2.INTER_AREA)


def extended_probs(small: np.ndarray, clicks: list[Click], probs: list[np.ndarray | None], predictor: Predictor,
                   zoom: ZoomSettings | None = None) -> list[np.ndarray | None]:
    """`probs` (the prediction after each click, None where never made) brought up to `clicks`: only the last click's
    prediction is made, since the network sees all clicks at once, except that a `--prev-mask` network (its previous
    prediction is an input) and zoom-in (it finds the object in the previous prediction) need the prediction before
    each click, so every one is made (each once): replaying an object's clicks then gives its saved mask."""
    chained = predictor.prev_mask or zoom is not None
    out = list(probs[:len(clicks)]) + [None] * max(0, len(clicks) - len(probs))
    for i in range(0 if chained else max(len(out) - 1, 0), len(out)):
        if out[i] is None:
            prev = out[i - 1] if chained and i else None
            out[i] = predictor.predict(small, clicks[:i + 1], prev=prev, zoom=zoom)
    return out


def paint_stroke(mask: np.ndarray, stroke: dict[str, Any]) -> None:
    """Add (or erase) the stroke's disc-brushed polyline to the bool mask, in place."""
    layer = np.zeros(mask.shape, np.uint8)
    points = [(round(x), round(y)) for x, y in stroke["points"]]
    radius = max(1, round(stroke["radius"]))
    for a, b in zip(points, points[1:] or points, strict=False):
        cv2.line(layer, a, b, 1, thickness=2 * radius, lineType=cv2.LINE_8)
        cv2.circle(layer, a, radius, 1, thickness=-1)
    cv2.circle(layer, points[-1], radius, 1, thickness=-1)
    mask[layer.astype(bool)] = not stroke.get("erase", False)


def current_mask(draft: Draft, threshold: float) -> np.ndarray:
    """The full-size bool mask: the last prediction (resized up), then every stroke in order."""
    h, w = draft.size
    done = [p for p in draft.probs[:len(draft.clicks())] if p is not None]
    # the latest prediction made (a superseded request may leave the last clicks unpredicted)
    mask = full_size(done[-1], (h, w)) > threshold if done else np.zeros((h, w), bool)
    for stroke in (a for a in draft.actions if "points" in a):
        paint_stroke(mask, stroke)
    return mask


class DraftStore(LruStore[Draft]):
    """Drafts by id (one per tab and object), at most `capacity`, the least recently used forgotten first."""

    def create(self, image_name: str, image: np.ndarray, max_side: int, label: str) -> Draft:
        draft = Draft(secrets.token_urlsafe(12), image_name, image, small_image(image, max_side), label)
        return self.add(draft.id, draft)
