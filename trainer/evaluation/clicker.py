"""Simulated users for NoC evaluation (spec §6): masks in, the next click out.

Pure numpy/OpenCV functions. A clicker sees the object's ground truth, the current prediction, the void pixels
(never clicked, not part of any error) and the pixels already clicked (never clicked twice). It returns `None`
when no unclicked error pixel is left, for example once the prediction is perfect: the evaluation engine then
records "no click" for that step and keeps the prediction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from ifcn.distance import distance_inside, exact_squared
from ifcn.trainer.core.clicks import Click

ClickFn = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], Click | None]


@dataclass(frozen=True)
class Clicker:
    """A named click rule with its NoC criterion: `strict` counts an object as done at IoU > t, else IoU >= t."""

    name: str
    next_click: ClickFn
    strict: bool


def error_masks(gt: np.ndarray, pred: np.ndarray, ignore: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false negatives, false positives), both without void pixels."""
    valid = ~ignore
    return gt & ~pred & valid, ~gt & pred & valid


def _bbox(mask: np.ndarray) -> tuple[slice, slice] | None:
    """The smallest box holding every True pixel (None for an empty mask)."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return None if not rows.size else np.s_[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def _box_depth(mask: np.ndarray) -> tuple[tuple[slice, slice], np.ndarray] | None:
    """The mask's bounding box and the squared depths inside it (None for an empty mask).

    Outside the box every pixel is 0, and the nearest zero of a pixel in the box is never farther than the box's zero
    ring (clamping a point into the box only shortens each coordinate difference), so the values are those of the
    whole image, at a fraction of the cost for small error regions.
    """
    box = _bbox(mask)
    if box is None:
        return None
    return box, exact_squared(distance_inside(mask[box]))


def depth(mask: np.ndarray) -> np.ndarray:
    """Squared Euclidean distance of each mask pixel to the nearest non-mask pixel, the image border counting as
    non-mask (a 1-pixel zero pad), as exact integers (int64); 0 outside the mask.

    Integers because the protocol breaks ties (the first pixel in row-major order among equally deep ones): OpenCV's
    exact transform returns float32 distances whose last bit varies from call to call (it depends on memory
    alignment), so equally deep pixels could compare unequal at random. Squared distances are integers and the
    float32 error on them is far below 0.5 (images up to thousands of pixels), so rounding restores them exactly.
    """
    out = np.zeros(mask.shape, np.int64)
    found = _box_depth(mask)
    if found is not None:
        out[found[0]] = found[1]
    return out


def deepest(mask: np.ndarray, clicked: np.ndarray) -> tuple[int, int, int]:
    """The largest squared depth among unclicked mask pixels and the first pixel (row-major) reaching it; (0, 0, 0)
    when there is none. Searching the bounding box only keeps the row-major order of the pixels that can win."""
    found = _box_depth(mask)
    if found is None:
        return 0, 0, 0
    box, dist = found
    dist[clicked[box]] = 0
    flat = int(np.argmax(dist))  # argmax returns the first occurrence in row-major order
    y, x = divmod(flat, dist.shape[1])
    return int(dist[y, x]), int(y + box[0].start), int(x + box[1].start)


def standard_click(gt: np.ndarray, pred: np.ndarray, ignore: np.ndarray, clicked: np.ndarray) -> Click | None:
    """The RITM-style clicker: the deepest point of the errors; positive only if FN is strictly deeper than FP."""
    fn, fp = error_masks(gt, pred, ignore)
    d_fn, y_fn, x_fn = deepest(fn, clicked)
    d_fp, y_fp, x_fp = deepest(fp, clicked)
    if d_fn == 0 and d_fp == 0:
        return None
    return Click(y_fn, x_fn, True) if d_fn > d_fp else Click(y_fp, x_fp, False)


def _largest_component(mask: np.ndarray, clicked: np.ndarray) -> tuple[int, np.ndarray]:
    """Area and mask of the largest 8-connected component that still has an unclicked pixel ((0, empty) if none).

    Equal areas: the component whose first pixel comes first in row-major order (chosen explicitly: OpenCV's
    parallel labelling does not promise raster-order labels).
    """
    box = _bbox(mask)
    if box is None:
        return 0, np.zeros_like(mask)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask[box].astype(np.uint8), connectivity=8)
    areas = stats[:, cv2.CC_STAT_AREA].astype(np.int64)
    areas[0] = 0  # background
    fully_clicked = np.bincount(labels[clicked[box]], minlength=count) == areas
    areas[fully_clicked] = 0
    if areas.max() == 0:
        return 0, np.zeros_like(mask)
    tied = np.flatnonzero(areas == areas.max())
    best = int(min(tied, key=lambda label: int(np.argmax(labels == label)))) if tied.size > 1 else int(tied[0])
    component = np.zeros_like(mask)
    component[box] = labels == best
    return int(areas[best]), component


def seed_click(gt: np.ndarray, pred: np.ndarray, ignore: np.ndarray, clicked: np.ndarray) -> Click | None:
    """The seed's clicker: the deepest point of the larger of the largest FN and FP components (8-connected).

    Positive only if the FN component is strictly larger (equal areas give a negative click, as in `standard_click`).
    Components without an unclicked pixel are passed over so no pixel is clicked twice.
    """
    fn, fp = error_masks(gt, pred, ignore)
    a_fn, c_fn = _largest_component(fn, clicked)
    a_fp, c_fp = _largest_component(fp, clicked)
    if a_fn == 0 and a_fp == 0:
        return None
    positive = a_fn > a_fp
    _, y, x = deepest(c_fn if positive else c_fp, clicked)
    return Click(y, x, positive)


CLICKERS: dict[str, Clicker] = {
    "standard": Clicker("standard", standard_click, strict=False),
    "seed": Clicker("seed", seed_click, strict=True),
}


def get_clicker(name: str) -> Clicker:
    try:
        return CLICKERS[name]
    except KeyError:
        raise ValueError(f"unknown clicker {name!r}; choose one of {sorted(CLICKERS)}") from None
