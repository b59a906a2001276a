"""Label maps as files: VOC palette PNGs, plain index PNGs, and colour overlays with a legend of the classes present.

Palette PNGs are what VOC's own `SegmentationClass` files are: mode "P", pixel values = class indices, the VOC colour
map as palette, so they open in any viewer in colour and read back as indices (`np.asarray(Image.open(path))`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ifcn.io import atomic_path
from ifcn.palette import save_index_png, voc_colormap

FORMATS = ("palette", "index", "overlay")
#: File suffix of each output format.
SUFFIX = {"palette": ".png", "index": ".png", "overlay": ".jpg"}
OVERLAY_ALPHA = 0.5
#: Smallest image (pixels on its short side) that gets a legend drawn in.
LEGEND_MIN_SIDE = 48


def class_shares(labels: np.ndarray, names: Sequence[str]) -> dict[str, float]:
    """Fraction of the image's pixels per class present, largest first."""
    counts = np.bincount(labels.ravel(), minlength=len(names))[:len(names)]
    shares = {names[i]: float(counts[i] / labels.size) for i in np.argsort(-counts, kind="stable") if counts[i]}
    return shares


def overlay_image(image: np.ndarray, labels: np.ndarray, names: Sequence[str]) -> Image.Image:
    """The VOC colours blended over the photo (background left as is), with a legend of the classes present in the
    top-left corner (images too small for one get none). Same size as the image."""
    colours = voc_colormap(len(names))
    blend = image.astype(np.float32)
    painted = labels > 0
    blend[painted] = (1 - OVERLAY_ALPHA) * blend[painted] + OVERLAY_ALPHA * colours[labels[painted]]
    picture = Image.fromarray(np.clip(blend + 0.5, 0, 255).astype(np.uint8))
    present = [i for i in np.unique(labels).tolist() if i < len(names)]
    if min(image.shape[:2]) >= LEGEND_MIN_SIDE and present:
        _draw_legend(picture, [(names[i], tuple(int(v) for v in colours[i])) for i in present])
    return picture


def _draw_legend(picture: Image.Image, entries: list[tuple[str, tuple[int, ...]]]) -> None:
    size = max(10, min(picture.size) // 30)
    font = ImageFont.load_default(size=size)
    draw = ImageDraw.Draw(picture, "RGBA")
    pad, swatch, line = size // 2, size, size + size // 3
    width = pad * 3 + swatch + max(int(draw.textlength(name, font=font)) for name, _ in entries)
    height = pad * 2 + line * len(entries)
    draw.rectangle((0, 0, width, height), fill=(255, 255, 255, 200))
    for row, (name, colour) in enumerate(entries):
        top = pad + row * line
        draw.rectangle((pad, top, pad + swatch, top + swatch), fill=colour, outline=(0, 0, 0))
        draw.text((pad * 2 + swatch, top), name, fill=(0, 0, 0), font=font)


def write_output(fmt: str, path: Path, image: np.ndarray, labels: np.ndarray, names: Sequence[str]) -> None:
    """Write `labels` as `fmt` (palette, index or overlay) to `path`, atomically."""
    if fmt not in FORMATS:
        raise ValueError(f"--format must be one of {FORMATS}, got {fmt!r}")
    with atomic_path(Path(path)) as tmp:
        if fmt == "palette":
            save_index_png(labels, tmp)
        elif fmt == "index":
            Image.fromarray(labels).save(tmp, format="PNG")  # uint8 2-D: mode "L"
        else:
            overlay_image(image, labels, names).save(tmp, format="JPEG", quality=90)
