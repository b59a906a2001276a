"""Zoom-in inference (RITM, FocalClick): after the first clicks, predict on a crop around the object, not the photo.

The network then sees the object at a fixed working size whatever the photo's size: thin parts get more pixels on
a large photo, and a click on a 4000×3000 photo costs one 400-px forward pass instead of a 12-megapixel one. The
crop is the box around the previous mask (probability > 0.5) and the positive clicks (a negative click acts on a
false positive, which the previous mask holds), grown by
`expansion` about its centre (never under `min_side` pixels), kept inside the image, and resized so that its long
side is `target` pixels. The crop's probabilities are resized back and pasted into the previous probabilities; the
rest of the photo keeps them.

At scale 1 (a crop that is the whole image, with `target` its long side) every step is exact: the result equals
whole-image prediction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ifcn.trainer.core.clicks import Click


@dataclass(frozen=True)
class ZoomSettings:
    """How to zoom: the crop's working long side, growth about the object box, smallest crop, clicks before zooming."""

    target: int = 400
    expansion: float = 1.4
    min_side: int = 100
    skip_clicks: int = 1
    #: The long side of the whole-image passes (the first clicks, or no object yet); 0 = the image's own size. A
    #: bound keeps the first click on a large photo as cheap as the later ones.
    whole_side: int = 0

    def __post_init__(self) -> None:
        if self.target < 32:
            raise ValueError(f"the zoom target must be at least 32 px (the backbones' smallest input), "
                             f"got {self.target}")
        if self.expansion < 1.0:
            raise ValueError(f"the zoom expansion must be >= 1 (a crop never smaller than the object), got "
                             f"{self.expansion}")
        if self.min_side < 1 or self.skip_clicks < 0:
            raise ValueError("the zoom's min_side must be >= 1 and skip_clicks >= 0")
        if self.whole_side and self.whole_side < 32:
            raise ValueError(f"the whole-image side must be 0 (full size) or at least 32 px, got {self.whole_side}")


def interactive_zoom(zoom_in: int) -> ZoomSettings | None:
    """The web tools' zoom-in from their `--zoom-in` flag: later clicks on a view of this long side, an object's
    first click on the whole photo at most twice that (as cheap as the later ones on a large photo); 0 = off."""
    if not zoom_in:
        return None
    if zoom_in < 32:
        raise ValueError(f"--zoom-in must be 0 (off) or at least 32 pixels, got {zoom_in}")
    return ZoomSettings(target=zoom_in, whole_side=2 * zoom_in)


@dataclass(frozen=True)
class View:
    """A crop [y0, y1) x [x0, x1) of an image, seen by the network at height x width pixels."""

    y0: int
    y1: int
    x0: int
    x1: int
    height: int
    width: int

    @property
    def scale(self) -> tuple[float, float]:
        """Network pixels per image pixel, (vertical, horizontal)."""
        return self.height / (self.y1 - self.y0), self.width / (self.x1 - self.x0)

    def to_view(self, y: int, x: int) -> tuple[int, int]:
        """An image pixel's coordinates in the network's view (pixel centres map onto pixel centres), clamped."""
        sy, sx = self.scale
        vy = round((y - self.y0 + 0.5) * sy - 0.5)
        vx = round((x - self.x0 + 0.5) * sx - 0.5)
        return min(max(vy, 0), self.height - 1), min(max(vx, 0), self.width - 1)

    def contains(self, y: int, x: int) -> bool:
        return self.y0 <= y < self.y1 and self.x0 <= x < self.x1


def _span(low: int, high: int, size: int, limit: int) -> tuple[int, int]:
    """A [start, end) interval of `size` (at most `limit`) centred on [low, high], shifted to lie inside [0, limit)."""
    size = min(size, limit)
    start = (low + high + 1 - size) // 2
    start = min(max(start, 0), limit - size)
    return start, start + size


def object_view(shape: tuple[int, int], clicks: Sequence[Click], prev: torch.Tensor | None,
                settings: ZoomSettings) -> View | None:
    """The crop to predict on for one object, or None for the whole image (too few clicks yet).

    `prev` is the object's previous probabilities (H, W), or None before any prediction.
    """
    if len(clicks) <= settings.skip_clicks:
        return None
    h, w = shape
    ys = [c.y for c in clicks if c.positive]
    xs = [c.x for c in clicks if c.positive]
    if prev is not None:
        inside = prev > 0.5
        rows = torch.nonzero(inside.any(dim=1)).flatten()
        cols = torch.nonzero(inside.any(dim=0)).flatten()
        if rows.numel():
            ys += [int(rows[0]), int(rows[-1])]
            xs += [int(cols[0]), int(cols[-1])]
    if not ys:  # only negative clicks and an empty mask: nothing to zoom on
        return None
    y_low, y_high, x_low, x_high = min(ys), max(ys), min(xs), max(xs)
    side_y = max(round((y_high - y_low + 1) * settings.expansion), settings.min_side)
    side_x = max(round((x_high - x_low + 1) * settings.expansion), settings.min_side)
    y0, y1 = _span(y_low, y_high, side_y, h)
    x0, x1 = _span(x_low, x_high, side_x, w)
    scale = settings.target / max(y1 - y0, x1 - x0)
    return View(y0, y1, x0, x1, max(1, round((y1 - y0) * scale)), max(1, round((x1 - x0) * scale)))


def whole_view(shape: Sequence[int], settings: ZoomSettings) -> View | None:
    """The whole image at most `whole_side` long, or None when it is no larger (predicted as it is)."""
    h, w = shape
    if not settings.whole_side or max(h, w) <= settings.whole_side:
        return None
    scale = settings.whole_side / max(h, w)
    return View(0, h, 0, w, max(1, round(h * scale)), max(1, round(w * scale)))


def resize(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """An (H, W) float map or a (C, H, W) uint8 image at `size` = (height, width); the same tensor at its own size.

    Shrinking averages (area / antialiased bilinear), enlarging is bilinear. On the CPU OpenCV does it, several times
    faster than torch's antialiased kernels on the multi-megapixel crops of large photos.
    """
    if tuple(maps.shape[-2:]) == size:
        return maps
    shrink = size[0] < maps.shape[-2] or size[1] < maps.shape[-1]
    if maps.device.type == "cpu":
        array = maps.numpy() if maps.ndim == 2 else maps.permute(1, 2, 0).numpy()
        out = cv2.resize(np.ascontiguousarray(array), (size[1], size[0]),
                         interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        return torch.from_numpy(out if maps.ndim == 2 else out.reshape(*size, -1)).permute(
            *((0, 1) if maps.ndim == 2 else (2, 0, 1)))
    batch = maps[None, None].float() if maps.ndim == 2 else maps[None].float()
    out = F.interpolate(batch, size=size, mode="bilinear", align_corners=False, antialias=shrink)[0]
    return out[0] if maps.ndim == 2 else out.round().clamp(0, 255).to(maps.dtype)


def crop_image(image: torch.Tensor, view: View) -> torch.Tensor:
    """The view of a (3, H, W) uint8 image as a (3, height, width) uint8 image."""
    return resize(image[:, view.y0:view.y1, view.x0:view.x1], (view.height, view.width))


def crop_map(probs: torch.Tensor, view: View) -> torch.Tensor:
    """The view of an (H, W) probability map, at the network's size."""
    return resize(probs[view.y0:view.y1, view.x0:view.x1], (view.height, view.width))


def paste(view_probs: torch.Tensor, view: View, prev: torch.Tensor) -> torch.Tensor:
    """The (H, W) probabilities: `prev` with the view's (height, width) probabilities resized back into the crop."""
    out = prev.clone()
    out[view.y0:view.y1, view.x0:view.x1] = resize(view_probs, (view.y1 - view.y0, view.x1 - view.x0))
    return out


def view_clicks(clicks: Sequence[Click], view: View) -> list[Click]:
    """The clicks inside the view, in the view's pixels (clicks outside it do not reach the network)."""
    return [Click(*view.to_view(c.y, c.x), c.positive) for c in clicks if view.contains(c.y, c.x)]


#: One prediction: a (3, h, w) uint8 image, its clicks, the previous (h, w) probabilities or None -> (h, w) ones.
PredictOne = Callable[[torch.Tensor, Sequence[Click], "torch.Tensor | None"], torch.Tensor]


def zoomed(predict: PredictOne, image: torch.Tensor, clicks: Sequence[Click], prev: torch.Tensor | None,
           settings: ZoomSettings, crop_prev: bool = True) -> torch.Tensor:
    """Foreground probabilities (H, W) of one object: whole-image prediction for the first clicks (at most
    `whole_side` long), then on its view.

    `predict` is given the view's image, the clicks in view coordinates and the previous probabilities cropped to the
    view (None when `prev` is None or `crop_prev` is false: a network without a previous-mask channel).
    """
    view = object_view(tuple(image.shape[-2:]), clicks, prev, settings) or whole_view(image.shape[-2:], settings)
    if view is None:
        return predict(image, clicks, prev)
    previous = prev if prev is not None else torch.zeros(image.shape[-2:], device=image.device)
    probs = predict(crop_image(image, view), view_clicks(clicks, view),
                    crop_map(previous, view) if prev is not None and crop_prev else None)
    return paste(probs, view, previous)


class ZoomIn:
    """A batch predictor (the NoC engine's protocol) that predicts each object on its own view.

    It wraps a batch predictor `base` (`Predictor` or anything with its call signature and `device`/`prev_mask`
    attributes). It needs every object's previous probabilities, whatever the network, so it asks for them the way
    the protocol lets a predictor ask: a true `prev_mask`; `base` gets them only if its network takes them.
    """

    prev_mask = True

    def __init__(self, base, settings: ZoomSettings) -> None:
        self.base = base
        self.settings = settings
        self.device = base.device

    def _one(self, image: torch.Tensor, clicks: Sequence[Click], prev: torch.Tensor | None) -> torch.Tensor:
        if getattr(self.base, "prev_mask", False):
            previous = prev if prev is not None else torch.zeros(image.shape[-2:], device=image.device)
            return self.base(image[None], [list(clicks)], previous[None])[0]
        return self.base(image[None], [list(clicks)])[0]

    def __call__(self, images: torch.Tensor, clicks: Sequence[Sequence[Click]],
                 prev: torch.Tensor | None = None) -> torch.Tensor:
        """Probabilities (B, H, W) for uint8 RGB `images` (B, 3, H, W), one click list and previous map each."""
        wants = bool(getattr(self.base, "prev_mask", False))
        out = [zoomed(self._one, image, row, None if prev is None else prev[i], self.settings, wants)
               for i, (image, row) in enumerate(zip(images, clicks, strict=True))]
        return out[0][None] if len(out) == 1 else torch.stack(out)
