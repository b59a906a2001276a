"""The PASCAL VOC colour map and palette-PNG writing for index masks.

VOC masks are palette ("P") PNGs: the pixel values are the labels and the palette only colours them for viewing.
The colour of index i interleaves the bits of i over R, G and B (most significant first), so 255 (void) is
(224, 224, 192).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def voc_colormap(n: int = 256) -> np.ndarray:
    """The VOC colour of each index 0..n-1 as an (n, 3) uint8 array."""
    index = np.arange(n)
    rgb = np.zeros((n, 3), np.int64)
    for bit in range(8):
        for channel in range(3):
            rgb[:, channel] |= ((index >> (3 * bit + channel)) & 1) << (7 - bit)
    return rgb.astype(np.uint8)


#: Flat [r0, g0, b0, r1, ...] list for `PIL.Image.putpalette`.
VOC_PALETTE: list[int] = voc_colormap().reshape(-1).tolist()


def save_index_png(mask: np.ndarray, path: Path) -> None:
    """Save a uint8 index map as a VOC-style palette PNG (PIL's PNG writer is deterministic: same array, same bytes)."""
    if mask.dtype != np.uint8 or mask.ndim != 2:
        raise ValueError(f"an index mask must be a 2-D uint8 array, got {mask.dtype} with shape {mask.shape}")
    image = Image.fromarray(mask)
    image.putpalette(VOC_PALETTE)
    image.save(path, format="PNG")
