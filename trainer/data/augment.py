"""Geometric augmentation: random scale, horizontal flip and crop/pad to a square, as ONE affine map.

The same 2×3 matrix warps the image (bilinear), the label map (nearest) and the click coordinates, so they stay
aligned by construction; warping straight to the crop size never resizes the whole image. Pixels outside the source
image (padding) get label 255 and are therefore ignored by the loss. Clicks that leave the crop are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ifcn.labels import VOID
from ifcn.trainer.data.items import Item, item_target
from ifcn.trainer.core.input_spec import IMAGENET_MEAN

#: Padding colour: the ImageNet mean, which normalises to ~0 (padding is ignored by the loss anyway).
PAD_RGB = tuple(round(255 * m) for m in IMAGENET_MEAN)


@dataclass(frozen=True)
class AugmentConfig:
    """`crop`: output side; `scale_range`: uniform range of the scale factor; `flip`: random horizontal flip;
    `keep_object`: interactive crops contain one of the pair's positive clicks, so the object stays in view."""

    crop: int = 384
    scale_range: tuple[float, float] = (0.75, 1.25)
    flip: bool = True
    keep_object: bool = True

    def __post_init__(self) -> None:
        if self.crop < 32:
            raise ValueError(f"crop must be at least 32 pixels (the models' smallest input), got {self.crop}")
        lo, hi = self.scale_range
        if not 0 < lo <= hi:
            raise ValueError(f"scale range must satisfy 0 < min ≤ max, got {self.scale_range}")


@dataclass(frozen=True)
class CropItem:
    """An augmented item: `image` crop×crop×3 uint8 RGB, `target` crop×crop uint8 (255 = ignored),
    `pos`/`neg` (K, 2) int32 (y, x) in crop pixels."""

    image: np.ndarray
    target: np.ndarray
    pos: np.ndarray
    neg: np.ndarray


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Map (K, 2) (y, x) pixel coordinates through an OpenCV 2×3 matrix (which acts on (x, y)); float (K, 2) (y, x)."""
    xy1 = np.concatenate([points[:, ::-1].astype(np.float64), np.ones((len(points), 1))], axis=1)
    return (xy1 @ matrix.T)[:, ::-1]


def _offset(size: float, crop: int, anchor: float | None, rng: np.random.Generator) -> float:
    """Top/left edge of the crop window along one axis of a `size`-pixel scaled image.

    Smaller than the crop: the image lands at a random place inside the window (negative offset = padding).
    With an anchor (a scaled click), only windows that contain it are drawn.
    """
    lo, hi = min(0.0, size - crop), max(0.0, size - crop)
    if anchor is not None:
        lo, hi = max(lo, anchor - crop + 1), min(hi, anchor)
    return float(rng.uniform(lo, hi)) if hi > lo else lo


def random_matrix(height: int, width: int, config: AugmentConfig, rng: np.random.Generator,
                  anchor: np.ndarray | None = None) -> np.ndarray:
    """The 2×3 affine matrix (source (x, y) -> crop (x, y)) for one random scale, flip and crop window."""
    scale = float(rng.uniform(*config.scale_range))
    flip = config.flip and bool(rng.random() < 0.5)
    # Scale (and mirror) around the pixel grid: x' = s·x or s·(W−1−x), y' = s·y.
    m = np.array([[-scale if flip else scale, 0.0, scale * (width - 1) if flip else 0.0],
                  [0.0, scale, 0.0]])
    a = transform_points(anchor[None], m)[0] if anchor is not None else (None, None)
    oy = _offset(scale * height, config.crop, a[0], rng)
    ox = _offset(scale * width, config.crop, a[1], rng)
    m[0, 2] -= round(ox)
    m[1, 2] -= round(oy)
    return m


def _inside(points: np.ndarray, crop: int) -> np.ndarray:
    keep = ((points >= 0) & (points < crop)).all(axis=1)
    return points[keep].astype(np.int32)


def apply_matrix(item: Item, matrix: np.ndarray, crop: int) -> CropItem:
    """Warp image, labels and clicks of `item` with `matrix` to a crop×crop item."""
    size = (crop, crop)
    image = cv2.warpAffine(item.image, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                           borderValue=PAD_RGB)
    labels = cv2.warpAffine(item.labels, matrix, size, flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                            borderValue=VOID)
    pos = _inside(np.rint(transform_points(item.pos, matrix)), crop)
    neg = _inside(np.rint(transform_points(item.neg, matrix)), crop)
    return CropItem(image, item_target(labels, item.object_id), pos, neg)


def augment(item: Item, config: AugmentConfig, rng: np.random.Generator) -> CropItem:
    """One random augmentation of `item`; interactive crops keep a random positive click (so the object) in view."""
    anchor = None
    if config.keep_object and len(item.pos):
        anchor = item.pos[int(rng.integers(len(item.pos)))]
    height, width = item.image.shape[:2]
    return apply_matrix(item, random_matrix(height, width, config, rng, anchor), config.crop)
