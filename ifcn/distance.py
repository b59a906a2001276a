"""Exact Euclidean distance transforms of binary masks (spec §2 and §6).

OpenCV's `DIST_L2` with `DIST_MASK_PRECISE` is the exact Euclidean transform (same values as
`scipy.ndimage.distance_transform_edt`) and about 8× faster, which matters because the click sampler runs one
transform per object. Both helpers treat the image border the way the spec asks: `distance_inside` counts the
pixels beyond the border as outside the mask (a 1-pixel pad), so a mask touching the border is "thin" there.
"""

from __future__ import annotations

import cv2
import numpy as np


def edt(mask: np.ndarray) -> np.ndarray:
    """Distance from every True pixel to the nearest False pixel (0 on False pixels), float32.

    Without any False pixel every distance is `inf` ("far everywhere"): OpenCV would return garbage (~1.8e19).
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.all():
        return np.full(mask.shape, np.inf, dtype=np.float32)
    return cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)


def distance_inside(mask: np.ndarray) -> np.ndarray:
    """Distance from each pixel of `mask` to the nearest pixel outside it, the image border counting as outside."""
    padded = np.pad(np.asarray(mask, dtype=bool), 1, constant_values=False)
    return edt(padded)[1:-1, 1:-1]


def distance_outside(mask: np.ndarray) -> np.ndarray:
    """Distance from each pixel outside `mask` to the nearest pixel of `mask` (0 on the mask, inf if it is empty)."""
    return edt(~np.asarray(mask, dtype=bool))


def exact_squared(dist: np.ndarray) -> np.ndarray:
    """Squared distances of a transform of finite values as exact integers (int64).

    OpenCV's exact transform returns float32 values whose last bit can vary between calls (memory alignment), so
    equal distances may compare unequal. Squared Euclidean distances between pixels are integers and the float32
    error is far below 0.5 at image sizes, so rounding restores them exactly: thresholds and ties become exact.
    """
    return np.rint(np.square(dist, dtype=np.float64)).astype(np.int64)
