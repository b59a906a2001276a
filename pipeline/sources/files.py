"""Reading a dataset's files, for every source, with errors that name the file and the fix.

Images are kept as their stored bytes when they are JPEG or PNG (re-encoding a JPEG loses quality) and converted
losslessly to PNG otherwise (BMP, TIFF, ...), but every image is fully decoded once here, so a truncated or corrupt
file is caught before it is sampled, never in the middle of training. A JPEG decoder *warning* ("Corrupt JPEG data:
premature end of data segment") counts as corruption: libjpeg only warns about damage in the middle of a file and
returns garbage pixels. Sizes come from decoders that ignore the EXIF orientation tag, as the trainer's decoder does
(`ifcn.shards.records.IMREAD_IMAGE`): masks are drawn on the stored pixels.
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import simplejpeg
from PIL import Image

from ifcn.errors import InputError
from ifcn.labels import VOID
from ifcn.shards.records import FIELD_JPEG, FIELD_PNG, image_field

#: Characters an id of a list file must not contain: it names a file inside the layout's folders.
_PATH_SEPARATORS = re.compile(r"[/\\]")
#: The end-of-image marker must lie near the end of a complete JPEG (a few trailing padding bytes are tolerated).
_EOI, _EOI_WINDOW = b"\xff\xd9", 1024
#: File name endings of the images a folder-based source (GrabCut, Berkeley, DAVIS) lists; other files are ignored.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


@dataclass(frozen=True)
class StoredImage:
    """An image as a shard stores it (JPEG or PNG bytes) and its size in stored pixels."""

    data: bytes
    height: int
    width: int


def id_problem(name: str) -> str | None:
    """Why `name`, a line of a list file, cannot be an image id, or None when it can. Spaces, dots and any other
    printable character are fine (`ifcn.keys` makes the shard key); a path separator would name another folder and
    an invisible character is almost always a copy-and-paste accident."""
    bad = _PATH_SEPARATORS.search(name)
    if bad:
        return f"contains {bad.group()!r}: an id names a file inside the layout's folders, not a path"
    if not name.isprintable():
        return "contains an invisible or control character"
    return None


def read_id_list(file: Path, fix: str, example: str = "2008_000123") -> list[str]:
    """The ids of a list file (one per line) in file order. A UTF-8 byte-order mark, CRLF or CR line ends, blank
    lines and surrounding spaces are tolerated; a bad or repeated id, or an empty list, raises naming the line."""
    try:
        text = file.read_bytes().decode("utf-8-sig")  # "-sig": an editor's byte-order mark is not part of the first id
    except FileNotFoundError:
        raise InputError(file, "missing split file", fix, kind="missing_file") from None
    except IsADirectoryError:
        raise InputError(file, "is a folder, not a split file", fix, kind="not_a_file") from None
    except UnicodeDecodeError:
        raise InputError(file, "is not a UTF-8 text file", f"write one image id per line, e.g. {example}",
                         kind="bad_split_file") from None
    ids: list[str] = []
    first_line: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        key = line.strip()
        if not key:
            continue
        problem = id_problem(key)
        if problem:
            raise InputError(file, f"line {lineno}: id {key!r} {problem}",
                             f"write bare image ids, without folder or extension, one per line, e.g. {example}",
                             kind="bad_id")
        if key in first_line:
            raise InputError(file, f"id {key} is listed twice (lines {first_line[key]} and {lineno})",
                             "list every image id once", kind="duplicate_id")
        first_line[key] = lineno
        ids.append(key)
    if not ids:
        raise InputError(file, "lists no image ids", f"write one image id per line, or {fix}", kind="empty_split")
    return ids


def list_files(folder: Path, fix: str) -> set[str]:
    """The names of the regular files in `folder` (one listing, no stat call per file on most file systems)."""
    try:
        return {entry.name for entry in os.scandir(folder) if entry.is_file()}
    except FileNotFoundError:
        raise InputError(folder, "missing folder", fix, kind="missing_folder") from None
    except NotADirectoryError:
        raise InputError(folder, "is a file, not a folder", fix, kind="missing_folder") from None


def missing_file(path: Path, key: str, fix: str, more: str = "") -> InputError:
    """The error of a file that an image needs and that is not there (or is a folder)."""
    what = "is a folder where a file" if path.is_dir() else "missing file"
    return InputError(path, f"{what} of image {key}{more}", fix, kind="missing_file", key=key)


def read_file(path: Path, key: str, fix: str) -> bytes:
    """The bytes of one input file; a missing file, a folder in its place or an unreadable file raise naming it."""
    try:
        return path.read_bytes()
    except (FileNotFoundError, IsADirectoryError):
        raise missing_file(path, key, fix) from None
    except OSError as error:  # permissions, I/O errors: the file is there but cannot be read
        raise InputError(path, f"cannot be read ({error.strerror or error})", fix, kind="unreadable_file",
                         key=key) from None


def read_image(path: Path, key: str, fix: str) -> StoredImage:
    """The image at `path` as a shard stores it, fully decoded once to prove it is intact."""
    data = read_file(path, key, fix)
    try:
        kind = image_field(data)
    except ValueError:
        kind = None
    if kind == FIELD_JPEG:
        height, width = _check_jpeg(path, data, key, fix)
        return StoredImage(data, height, width)
    try:
        with Image.open(io.BytesIO(data), formats=["PNG"] if kind == FIELD_PNG else None) as image:
            image.load()
            if kind == FIELD_PNG:
                return StoredImage(data, image.height, image.width)
            rgb = np.asarray(image.convert("RGB"))
    except Exception as error:  # PIL raises many types on hostile bytes; all mean "not a readable image"
        raise InputError(path, f"is not a readable image ({error})", fix, kind=_corrupt_kind(path), key=key) from None
    ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise InputError(path, "could not be converted to PNG", fix, kind="corrupt_image", key=key)
    return StoredImage(png.tobytes(), rgb.shape[0], rgb.shape[1])


def _corrupt_kind(path: Path) -> str:
    """The skip reason of an image that does not decode, by what its name says it is."""
    suffix = path.suffix.lower()
    return "corrupt_jpeg" if suffix in (".jpg", ".jpeg") else "corrupt_png" if suffix == ".png" else "corrupt_image"


def _check_jpeg(path: Path, data: bytes, key: str, fix: str) -> tuple[int, int]:
    """(height, width) of a complete JPEG that decodes without a single decoder warning; anything else raises.

    `simplejpeg` (libjpeg-turbo) in strict mode turns libjpeg's warnings into errors; PIL and OpenCV decode a JPEG
    damaged in the middle without a word (OpenCV prints the warning to stderr only). The end-marker check catches a
    file cut so close to its end that the decoder does not notice.
    """
    if data.rfind(_EOI, max(0, len(data) - _EOI_WINDOW)) < 0:
        raise InputError(path, "is truncated or corrupt (no JPEG end marker at its end)", fix, kind="corrupt_jpeg",
                         key=key)
    try:
        height, width, _, _ = simplejpeg.decode_jpeg_header(data)
        # 1/8 scale (libjpeg's DCT scaling): the whole entropy-coded stream is still parsed, so every warning is
        # raised, for a tenth of a full decode's time.
        simplejpeg.decode_jpeg(data, colorspace="GRAY", strict=True, min_factor=8, min_height=1, min_width=1)
    except ValueError as error:
        raise InputError(path, f"is a corrupt JPEG (the decoder reports: {error})", fix, kind="corrupt_jpeg",
                         key=key) from None
    return int(height), int(width)


def read_index_mask(path: Path, key: str, fix: str) -> np.ndarray:
    """A mask PNG's raw palette (or grayscale) indices as H×W uint8: a colour conversion would destroy the ids."""
    try:
        with Image.open(path) as image:
            fmt, mode = image.format, image.mode
            image.load()
            indices = np.asarray(image) if mode in ("P", "L") else None
    except (FileNotFoundError, IsADirectoryError):
        raise missing_file(path, key, fix) from None
    except Exception as error:  # PIL raises many types on hostile bytes; all mean "not a readable PNG"
        raise InputError(path, f"is not a readable PNG ({error})", fix, kind="corrupt_png", key=key) from None
    if fmt != "PNG":
        raise InputError(path, f"is a {fmt} file, not a PNG", f"masks must be the original palette PNGs: {fix}",
                         kind="not_index_mask", key=key)
    if mode in ("RGB", "RGBA"):
        raise InputError(path, "is an RGB image, not a palette/index mask",
                         f"masks must be the original palette PNGs: {fix}", kind="not_index_mask", key=key)
    if indices is None:
        raise InputError(path, f"has image mode {mode}, not an 8-bit palette or index mask",
                         f"masks must be the original palette PNGs: {fix}", kind="not_index_mask", key=key)
    return indices


def read_mask_levels(path: Path, key: str, fix: str) -> np.ndarray:
    """A binary-style mask (any format PIL reads) as H×W uint8 levels: the largest colour channel of each pixel, the
    palette applied and alpha ignored, so a gray, palette or colour mask gives the same levels."""
    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            if mode in ("L", "P", "1", "RGB", "RGBA", "LA", "PA"):
                levels = np.asarray(image.convert("RGB")).max(axis=2) if mode != "L" else np.asarray(image)
            else:
                levels = None
    except (FileNotFoundError, IsADirectoryError):
        raise missing_file(path, key, fix) from None
    except Exception as error:  # PIL raises many types on hostile bytes; all mean "not a readable mask"
        raise InputError(path, f"is not a readable mask image ({error})", fix, kind="corrupt_mask", key=key) from None
    if levels is None:
        raise InputError(path, f"has image mode {mode}, not an 8-bit gray, palette or colour mask", fix,
                         kind="bad_mask", key=key)
    return levels


def check_size(image_path: Path, image: StoredImage, mask_path: Path, mask: np.ndarray, key: str, fix: str) -> None:
    """Raise unless `mask` has the image's size (height, width)."""
    if mask.shape[:2] != (image.height, image.width):
        raise InputError(mask_path, f"is {mask.shape[1]}×{mask.shape[0]} pixels but {image_path} is "
                         f"{image.width}×{image.height}", f"an image and its masks must have the same size: {fix}",
                         kind="size_mismatch", key=key)


def find_by_stem(names: set[str], suffixes: tuple[str, ...]) -> dict[str, list[str]]:
    """File names of `names` with one of `suffixes` (any case), grouped by stem."""
    found: dict[str, list[str]] = {}
    for name in sorted(names):
        stem, suffix = os.path.splitext(name)
        if suffix.lower() in suffixes:
            found.setdefault(stem, []).append(name)
    return found


def check_class_indices(path: Path, class_map: np.ndarray, num_classes: int, key: str, fix: str) -> None:
    """Raise unless every value of `class_map` is a class (0..num_classes-1) or void (255)."""
    counts = np.bincount(class_map.ravel(), minlength=256)
    bad = (np.flatnonzero(counts[num_classes:VOID]) + num_classes).tolist()
    if bad:
        raise InputError(path, f"holds class indices {bad[:8]} outside 0..{num_classes - 1} and {VOID} (void)",
                         "class masks must keep the dataset's raw class indices (a mask converted to grayscale or "
                         f"colour loses them): {fix}", kind="bad_class_index", key=key)
