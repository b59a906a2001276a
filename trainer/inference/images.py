"""Reading users' photos for inference: any format PIL reads, RGB uint8, size limits, as displayed: the EXIF
orientation is applied, so masks come back in the orientation the user sees. (Dataset images are decoded as stored,
EXIF ignored, by `ifcn.shards.records.decode_dataset_image`: their masks are drawn on the stored pixels.)

The pixel count is read from the file's header (PIL opens lazily) and checked against `max_pixels` before any pixel
is decoded, so a small file claiming a huge image (a 20 KB PNG of 13000x13000) costs nothing; a JPEG larger than the
target size is decoded reduced (PIL's draft mode: libjpeg scales by 1/2, 1/4 or 1/8 while decoding).

Errors are `InputError`s with a stable `kind` (`not_an_image`, `corrupt_image`, `too_many_pixels`), so the web demo
can answer each with its own 4xx status and `ifcn-eval predict` can skip or stop with a message that names the file.
Where that limit is in force, it replaces PIL's own DecompressionBombWarning (from 89 MP), which would otherwise be
logged for images the user allowed with `--max-megapixels`.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ifcn.errors import InputError

#: File name endings listed as images (case-insensitive).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
EXIF_ORIENTATION = 0x0112
#: Default `--max-megapixels` of `ifcn-eval demo` and `predict`: an RGB image of 100 MP takes 300 MB once decoded.
DEFAULT_MAX_MEGAPIXELS = 100.0
#: The largest `--max-megapixels`: PIL itself refuses images over twice its `MAX_IMAGE_PIXELS` as decompression bombs.
MAX_MEGAPIXELS_LIMIT = 2 * (Image.MAX_IMAGE_PIXELS or 0) / 1e6


@dataclass(frozen=True)
class LoadedImage:
    """The RGB pixels to predict on, and the size of the file's image before any downscaling."""

    rgb: np.ndarray
    original_size: tuple[int, int]  # (height, width)

    @property
    def downscaled(self) -> bool:
        return self.rgb.shape[:2] != self.original_size


def fit_size(height: int, width: int, max_side: int) -> tuple[int, int]:
    """(height, width) scaled so that the long side is at most `max_side` (never up), each side at least 1."""
    scale = min(1.0, max_side / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def full_size(probs: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A map computed on a downscaled copy (probabilities, or a mask as 0/1 floats) resized (bilinear) to the photo's
    (height, width) `size`, so that masks are always returned at the size of the photo."""
    h, w = size
    return probs if probs.shape == (h, w) else cv2.resize(probs, (w, h), interpolation=cv2.INTER_LINEAR)


def max_pixels_of(megapixels: float) -> int:
    """The pixel limit of a `--max-megapixels` value, checked to lie in (0, MAX_MEGAPIXELS_LIMIT]."""
    if not 0 < megapixels <= MAX_MEGAPIXELS_LIMIT:
        raise ValueError(f"--max-megapixels must lie in (0, {MAX_MEGAPIXELS_LIMIT:g}] (PIL refuses larger images), "
                         f"got {megapixels:g}")
    return int(megapixels * 1e6)


def _check_pixels(width: int, height: int, max_pixels: int | None, source: str) -> None:
    if max_pixels is not None and width * height > max_pixels:
        raise InputError(source, f"{width}x{height} is {width * height / 1e6:.1f} megapixels, over the limit of "
                                 f"{max_pixels / 1e6:g}", "downscale the image first, or raise --max-megapixels",
                         kind="too_many_pixels")


def decode_user_photo(data: bytes, source: str, max_side: int | None = None, *,
                 max_pixels: int | None = None) -> LoadedImage:
    """Decode a user's photo as displayed (EXIF orientation applied; `source` names it in errors); a long side over
    `max_side` is downscaled (area filter). An image of more than `max_pixels` pixels (by its header) is refused
    before it is decoded."""
    if max_pixels is not None:  # our limit, checked below, replaces PIL's warning (a filter, not thread-swapped)
        warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
    try:
        with Image.open(io.BytesIO(data)) as opened:
            width, height = opened.size
            _check_pixels(width, height, max_pixels, source)
            turned = opened.getexif().get(EXIF_ORIENTATION, 1) in (5, 6, 7, 8)  # rotated by 90 degrees
            original = (width, height) if turned else (height, width)
            target = fit_size(*original, max_side) if max_side else original
            if target != original:  # JPEG: decode at a reduced scale (at least the target size), much faster
                opened.draft("RGB", target if turned else target[::-1])
            image = ImageOps.exif_transpose(opened).convert("RGB")
    except InputError:
        raise
    except Image.DecompressionBombError as e:
        raise InputError(source, f"too many pixels to decode safely ({e})", "downscale the image first",
                         kind="too_many_pixels") from None
    except UnidentifiedImageError:
        raise InputError(source, "not an image in a format PIL reads", "give a JPEG, PNG, BMP, GIF, TIFF or WebP file",
                         kind="not_an_image") from None
    except (OSError, ValueError, SyntaxError) as e:  # truncated or damaged data
        raise InputError(source, f"corrupt or truncated image ({e})", "re-export or re-download the image",
                         kind="corrupt_image") from None
    if (image.height, image.width) != target:
        image = image.resize(target[::-1], Image.Resampling.BOX)
    return LoadedImage(np.asarray(image), original)


def read_image(path: Path, max_side: int | None = None, *, max_pixels: int | None = None) -> LoadedImage:
    """`decode_user_photo` of a file; a missing or unreadable file is an `InputError` naming it."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise InputError(path, f"cannot read the file ({e.strerror})", "check the path and its permissions",
                         kind="unreadable") from None
    return decode_user_photo(data, str(path), max_side, max_pixels=max_pixels)


def is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def list_images(folder: Path) -> list[Path]:
    """The image files directly inside `folder` (by suffix), sorted by name."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and is_image_name(p))
