"""Semantic segmentation of an image of any size: whole, downscaled (`max_side`), or in overlapping tiles.

- whole: one forward pass at the image's size (memory grows with the pixel count: a 20-megapixel photo needs
  several GB of activations);
- `max_side`: the image is downscaled (area filter) so its long side is at most `max_side`, and the logits are
  upsampled bilinearly back to the image's size;
- `tile`/`overlap`: square tiles of `tile` pixels overlapping by `overlap`, whose logits are blended with weights that
  ramp up over the overlap from each tile's inner edges, so no seam shows; memory is bounded by the tile.
Both can be combined (downscale, then tile what is still larger than a tile). The label map is the argmax of the
blended / upsampled logits, computed in bands of rows so that the full-size (C, H, W) logits never exist at once.
With a dense CRF (`crf`), it runs at the resolution the network saw (after `max_side`, so its memory and time stay
bounded as the network's do), and its marginals are upsampled in place of the logits.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ifcn.trainer.inference.crf import CrfParams, dense_crf
from ifcn.trainer.inference.images import fit_size
from ifcn.trainer.inference.predictor import MIN_SIDE, Predictor

#: Output rows per band when upsampling logits to the image's size.
BAND_ROWS = 256


@dataclass(frozen=True)
class Sizing:
    """How an image reaches the network: `max_side` (None = never downscale), `tile` (None = one pass), `overlap`."""

    max_side: int | None = None
    tile: int | None = None
    overlap: int = 64

    def __post_init__(self) -> None:
        if self.max_side is not None and self.max_side < MIN_SIDE:
            raise ValueError(f"--max-side must be at least {MIN_SIDE}, got {self.max_side}")
        if self.tile is not None and self.tile < MIN_SIDE:
            raise ValueError(f"--tile must be at least {MIN_SIDE}, got {self.tile}")
        if self.tile is not None and not 0 <= self.overlap < self.tile // 2:
            raise ValueError(f"--overlap must lie in [0, tile/2) = [0, {self.tile // 2}), got {self.overlap}")

    def describe(self) -> str:
        parts = [f"max side {self.max_side}" if self.max_side else "full size"]
        if self.tile:
            parts.append(f"tiles {self.tile} overlapping {self.overlap}")
        return ", ".join(parts)


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of `tile` pixels covering [0, length) with at least `overlap` pixels shared by
    neighbours; the last tile ends at the border (never padded). One tile when it covers the whole length."""
    if length <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, length - tile, step))
    return [*starts, length - tile]


def ramp(start: int, size: int, length: int, overlap: int) -> np.ndarray:
    """1-D blending weights of a tile [start, start+size) on an axis of `length`: rising from 1/(overlap+1) to 1 over
    `overlap` pixels from each edge that borders another tile, 1 at the image's own borders."""
    i = np.arange(size, dtype=np.float32)
    far = np.full(size, np.inf, np.float32)
    left = i if start > 0 else far
    right = (size - 1 - i) if start + size < length else far
    return np.minimum(1.0, (np.minimum(left, right) + 1) / (overlap + 1)).astype(np.float32)


def _forward(predictor: Predictor, image: np.ndarray) -> torch.Tensor:
    """(C, h, w) float32 logits of one RGB uint8 image, on the CPU."""
    return predictor.logits(predictor.image_batch([image]))[0].cpu()


def tiled_logits(predictor: Predictor, image: np.ndarray, tile: int, overlap: int) -> torch.Tensor:
    """(C, H, W) logits of `image` blended from overlapping tiles."""
    h, w = image.shape[:2]
    total = torch.zeros(predictor.num_classes, h, w)
    weight = torch.zeros(h, w)
    ys, xs = tile_starts(h, tile, overlap), tile_starts(w, tile, overlap)
    for y in ys:
        th = min(tile, h)
        wy = ramp(y, th, h, overlap)
        for x in xs:
            tw = min(tile, w)
            ww = torch.from_numpy(np.outer(wy, ramp(x, tw, w, overlap)))
            total[:, y:y + th, x:x + tw] += _forward(predictor, image[y:y + th, x:x + tw]) * ww
            weight[y:y + th, x:x + tw] += ww
    return total.div_(weight)  # in place: the full-size logits exist once


def upsampled_argmax(logits: torch.Tensor, size: tuple[int, int], band: int = BAND_ROWS) -> np.ndarray:
    """argmax over classes of `logits` (C, h, w) bilinearly resized to `size` (align_corners=False, as
    `F.interpolate`), as a uint8 (H, W) label map, one band of output rows at a time."""
    _, h, w = logits.shape
    out_h, out_w = size
    if (h, w) == (out_h, out_w):
        return logits.argmax(0).to(torch.uint8).numpy()
    labels = np.empty((out_h, out_w), np.uint8)
    scale = h / out_h
    for top in range(0, out_h, band):
        rows = torch.arange(top, min(top + band, out_h), dtype=torch.float64)
        src = ((rows + 0.5) * scale - 0.5).clamp(min=0)
        y0 = src.floor().long().clamp(max=h - 1)
        y1 = (y0 + 1).clamp(max=h - 1)
        frac = (src - y0).float().view(1, -1, 1)
        vertical = logits[:, y0] * (1 - frac) + logits[:, y1] * frac  # (C, band, w)
        full = F.interpolate(vertical[None], size=(len(rows), out_w), mode="bilinear", align_corners=False)[0]
        labels[top:top + len(rows)] = full.argmax(0).to(torch.uint8).numpy()
    return labels


def segment(predictor: Predictor, image: np.ndarray, sizing: Sizing | None = None,
            crf: CrfParams | None = None, size: tuple[int, int] | None = None) -> np.ndarray:
    """The (H, W) uint8 label map (class indices) of an (H, W, 3) uint8 RGB image, by a semantic `predictor`
    (`sizing` None: the whole image in one pass), refined by a dense CRF with the settings `crf` when given; at
    `size` (height, width) when given (an image decoded reduced: the labels at the photo's own size)."""
    sizing = sizing or Sizing()
    if predictor.task != "semantic":
        raise ValueError("segmenting an image needs a semantic checkpoint; an interactive one needs clicks: use "
                         "`ifcn-eval demo` or `Predictor.predict(image, clicks)`")
    h, w = image.shape[:2]
    out_size = size or (h, w)
    work = image
    if sizing.max_side is not None and max(h, w) > sizing.max_side:
        small_h, small_w = fit_size(h, w, sizing.max_side)
        work = cv2.resize(image, (small_w, small_h), interpolation=cv2.INTER_AREA)
    if sizing.tile is not None and max(work.shape[:2]) > sizing.tile:
        logits = tiled_logits(predictor, work, sizing.tile, sizing.overlap)
    else:
        logits = _forward(predictor, work)
    if crf is not None:
        logits = torch.from_numpy(dense_crf(work, logits.softmax(0).numpy(), crf))
    return upsampled_argmax(logits, out_size)
