"""GrabCut refinement of a prediction (spec §6 item 7; the seed's stand-in for the paper's graph cut), and GrabCut
from the clicks alone, the no-learning baseline that a trained model must beat (RITM's tables list it).

The network's mask seeds GrabCut as probable foreground/background; disks around the clicks are certain
(negative disks drawn last, so they win where disks overlap). OpenCV fits colour models to both labels, so a seed
with only one label cannot be refined: the seed mask is returned unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from ifcn.trainer.core.clicks import Click

RADIUS = 5
ITERATIONS = 5
RNG_SEED = 0
#: The baseline's probable region: the box around the positive clicks grown by this share of the image's longer side
#: on every side (a first click at an object's centre then covers objects up to about a third of the image across).
BOX_MARGIN = 0.15


def seed_mask(pred: np.ndarray, clicks: Sequence[Click], radius: int = RADIUS) -> np.ndarray:
    """The GrabCut label map: prediction as probable fg/bg, click disks as sure fg (positive) / sure bg (negative)."""
    mask = np.where(pred, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
    for positive, label in ((True, cv2.GC_FGD), (False, cv2.GC_BGD)):
        for click in clicks:
            if click.positive == positive:
                cv2.circle(mask, (click.x, click.y), radius, int(label), thickness=-1)
    return mask


def grabcut_refine(image: np.ndarray, pred: np.ndarray, clicks: Sequence[Click], radius: int = RADIUS,
                   iterations: int = ITERATIONS) -> np.ndarray:
    """Refine the bool mask `pred` of the RGB uint8 `image` with GrabCut; returns a bool mask of the same shape."""
    return run_grabcut(image, seed_mask(pred, clicks, radius), iterations)


def click_seed_mask(shape: tuple[int, int], clicks: Sequence[Click], radius: int = RADIUS,
                    margin: float = BOX_MARGIN) -> np.ndarray:
    """The GrabCut label map of the clicks alone (the no-learning baseline): sure background everywhere but the box
    around the positive clicks, grown by `margin` × the image's longer side, which is probable foreground; positive
    disks sure foreground, negative disks sure background (drawn last). Without a positive click, all background."""
    mask = np.full(shape, cv2.GC_BGD, np.uint8)
    positives = np.array([(c.y, c.x) for c in clicks if c.positive], np.int64).reshape(-1, 2)
    if len(positives):
        grow = round(margin * max(shape))
        (y0, x0), (y1, x1) = positives.min(axis=0) - grow, positives.max(axis=0) + grow
        mask[max(y0, 0):y1 + 1, max(x0, 0):x1 + 1] = cv2.GC_PR_FGD
    for positive, label in ((True, cv2.GC_FGD), (False, cv2.GC_BGD)):
        for click in clicks:
            if click.positive == positive:
                cv2.circle(mask, (click.x, click.y), radius, int(label), thickness=-1)
    return mask


def grabcut_from_clicks(image: np.ndarray, clicks: Sequence[Click], radius: int = RADIUS, margin: float = BOX_MARGIN,
                        iterations: int = ITERATIONS) -> np.ndarray:
    """The no-learning baseline's bool mask of the RGB uint8 `image`: GrabCut from `click_seed_mask` alone."""
    return run_grabcut(image, click_seed_mask(image.shape[:2], clicks, radius, margin), iterations)


def run_grabcut(image: np.ndarray, mask: np.ndarray, iterations: int = ITERATIONS) -> np.ndarray:
    """GrabCut of the RGB uint8 `image` from the label map `mask` (changed in place); the bool foreground. A map with
    only one of the two labels cannot fit both colour models: its foreground is returned as it is."""
    foreground = (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)
    if foreground.all() or not foreground.any():
        return foreground
    bgd_model, fgd_model = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    bgr = np.ascontiguousarray(image[..., ::-1])
    # GrabCut's k-means draws from OpenCV's (thread-local) RNG: reseed it so each call depends on its inputs only,
    # and batched and one-at-a-time evaluation refine identically.
    cv2.setRNGSeed(RNG_SEED)
    cv2.grabCut(bgr, mask, None, bgd_model, fgd_model, iterations, cv2.GC_INIT_WITH_MASK)
    return (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)


def grabcut_refine_at_most(image: np.ndarray, pred: np.ndarray, clicks: Sequence[Click], max_side: int,
                           radius: int = RADIUS) -> np.ndarray:
    """`grabcut_refine` on a copy downscaled so its long side is at most `max_side`, the mask upsampled back.

    GrabCut's time grows with the pixel count (a minute per click at 4096x2458), while the boundary it moves is a
    few pixels wide at any size: at a bounded size the cost of a click is bounded. Images within `max_side` are
    refined at full size, as by `grabcut_refine`."""
    h, w = pred.shape
    scale = max_side / max(h, w)
    if scale >= 1.0:
        return grabcut_refine(image, pred, clicks, radius)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small_image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    small_pred = cv2.resize(pred.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
    small_clicks = [Click(c.positive, min(size[1] - 1, int(c.y * scale)), min(size[0] - 1, int(c.x * scale)))
                    for c in clicks]
    refined = grabcut_refine(small_image, small_pred, small_clicks, max(1, round(radius * scale)))
    return cv2.resize(refined.astype(np.uint8) * 255, (w, h), interpolation=cv2.INTER_LINEAR) > 127
