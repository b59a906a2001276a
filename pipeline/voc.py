"""Reading PASCAL VOC 2012 segmentation data, checking every file on the way.

Bad input must stop the pipeline with a message that names the file and the fix (or, with `--on-error skip`, leave
the image out), never produce wrong labels silently. Hence masks are read as raw palette indices with PIL (a colour
conversion destroys the ids), JPEGs are kept as their original bytes (re-encoding loses quality) but fully parsed
once, so that truncated or corrupt files are caught here rather than in the middle of training.
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ifcn.errors import InputError
from ifcn.shards.records import VOID

SPLITS = ("train", "val", "trainval")
IMAGES, CLASSES, OBJECTS, SETS = "JPEGImages", "SegmentationClass", "SegmentationObject", "ImageSets/Segmentation"
LAYOUT = (IMAGES, CLASSES, OBJECTS, SETS)
NUM_CLASSES = 21  # background + 20 object classes; 255 = void
VOC_TAR = "VOCtrainval_11-May-2012.tar"
GET_VOC = (f"download {VOC_TAR} and extract it (tar xf {VOC_TAR}) so that VOCdevkit/VOC2012/ with JPEGImages/, "
           "SegmentationClass/, SegmentationObject/ and ImageSets/Segmentation/ exists, then pass VOCdevkit/VOC2012 "
           "(or a folder above it)")
RESTORE = f"restore the original file from {VOC_TAR} (or regenerate the synthetic set), or remove the id from the split"
#: Characters an id must not contain: a dot splits webdataset keys, slashes make folders, spaces break list files.
_BAD_ID_CHARS = re.compile(r"[./\\\s]")
#: The end-of-image marker must lie near the end of a complete JPEG (a few trailing padding bytes are tolerated).
_EOI, _EOI_WINDOW = b"\xff\xd9", 1024


@dataclass(frozen=True, eq=False)
class VocImage:
    """One VOC image: the JPEG file's bytes untouched and its class and object maps as raw indices.

    The maps are read-only H×W uint8 arrays (shared data must not be edited in place; copy to change them).
    """

    key: str
    jpeg: bytes
    class_map: np.ndarray
    object_map: np.ndarray

    @property
    def height(self) -> int:
        return int(self.class_map.shape[0])

    @property
    def width(self) -> int:
        return int(self.class_map.shape[1])


def find_voc_root(path: Path | str) -> Path:
    """The VOC2012 folder, given it, its `VOCdevkit` parent or the folder holding `VOCdevkit`; its layout checked."""
    path = Path(path)
    if not path.is_dir():
        raise InputError(path, "does not exist or is not a folder", GET_VOC, kind="missing_folder")
    candidates = (path / "VOCdevkit" / "VOC2012", path / "VOC2012")
    root = next((c for c in candidates if c.is_dir()), path)
    if root is path and not any((path / name.split("/")[0]).is_dir() for name in LAYOUT):
        raise InputError(path, "holds no VOC 2012 data: expected VOCdevkit/VOC2012/, VOC2012/ or JPEGImages/, "
                         "SegmentationClass/, SegmentationObject/ and ImageSets/Segmentation/ inside it",
                         GET_VOC, kind="missing_folder")
    missing = [name for name in LAYOUT if not (root / name).is_dir()]
    if missing:
        raise InputError(root / missing[0], f"missing folder(s) {', '.join(m + '/' for m in missing)} of the VOC 2012 "
                         f"layout under {root}", GET_VOC, kind="missing_folder")
    return root


def read_split(root: Path, split: str) -> list[str]:
    """The ids of `ImageSets/Segmentation/<split>.txt` in file order (blank lines ignored); bad lists raise."""
    folder = Path(root) / SETS
    if split not in SPLITS:
        raise InputError(folder / f"{split}.txt", f"unknown split {split!r}", "split must be train, val or trainval",
                         kind="bad_split")
    if not folder.is_dir():
        raise InputError(folder, "missing folder", GET_VOC, kind="missing_folder")
    file = folder / f"{split}.txt"
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(file, f"missing split file for split {split!r}", GET_VOC, kind="missing_file") from None
    except UnicodeDecodeError:
        raise InputError(file, "is not a UTF-8 text file", "write one image id per line, e.g. 2008_000123",
                         kind="bad_split_file") from None
    ids: list[str] = []
    first_line: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        key = line.strip()
        if not key:
            continue
        bad = _BAD_ID_CHARS.search(key)
        if bad:
            raise InputError(file, f"line {lineno}: id {key!r} contains {bad.group()!r}, which breaks shard keys "
                             "(webdataset groups a sample's files by the name before the first dot)",
                             "write bare image ids, without folder or extension, one per line, e.g. 2008_000123",
                             kind="bad_id")
        if key in first_line:
            raise InputError(file, f"id {key} is listed twice (lines {first_line[key]} and {lineno})",
                             "list every image id once", kind="duplicate_id")
        first_line[key] = lineno
        ids.append(key)
    if not ids:
        raise InputError(file, "lists no image ids", f"write one image id per line, or {GET_VOC}", kind="empty_split")
    return ids


def image_paths(root: Path, key: str) -> tuple[Path, Path, Path]:
    """The JPEG, class mask and object mask paths of image `key`."""
    root = Path(root)
    return root / IMAGES / f"{key}.jpg", root / CLASSES / f"{key}.png", root / OBJECTS / f"{key}.png"


def check_files(root: Path, ids: list[str]) -> list[InputError]:
    """One error per id whose JPEG or masks are missing: a cheap up-front check (three folder listings, no stat calls).

    Listing folders rather than testing each file keeps this fast on network file systems with thousands of ids.
    """
    root = Path(root)
    present = {folder: _list_folder(root / folder) for folder in (IMAGES, CLASSES, OBJECTS)}
    errors = []
    for key in ids:
        missing = [p for p in image_paths(root, key) if p.name not in present[p.parent.name]]
        if missing:
            others = f" (also missing: {', '.join(str(p) for p in missing[1:])})" if missing[1:] else ""
            errors.append(_missing_file(missing[0], key, others))
    return errors


def _missing_file(path: Path, key: str, more: str = "") -> InputError:
    return InputError(path, f"missing file for image {key} listed in the split{more}", RESTORE, kind="missing_file",
                      key=key)


def _list_folder(folder: Path) -> set[str]:
    try:
        return {entry.name for entry in os.scandir(folder)}
    except FileNotFoundError:
        raise InputError(folder, "missing folder", GET_VOC, kind="missing_folder") from None


def load_voc_image(root: Path, key: str, num_classes: int = NUM_CLASSES) -> VocImage:
    """Read and check one image: JPEG bytes as stored (fully parsed once), masks as raw indices of equal size."""
    jpg_path, class_path, object_path = image_paths(root, key)
    jpeg = _read_bytes(jpg_path, key)
    width, height = _check_jpeg(jpg_path, jpeg, key)
    class_map = _read_mask(class_path, key)
    object_map = _read_mask(object_path, key)
    for path, mask in ((class_path, class_map), (object_path, object_map)):
        if mask.shape != (height, width):
            raise InputError(path, f"is {mask.shape[1]}×{mask.shape[0]} pixels but {jpg_path} is {width}×{height}",
                             f"an image and its masks must have the same size: {RESTORE}", kind="size_mismatch",
                             key=key)
    counts = np.bincount(class_map.ravel(), minlength=256)
    bad = (np.flatnonzero(counts[num_classes:VOID]) + num_classes).tolist()
    if bad:
        raise InputError(class_path, f"holds class indices {bad[:8]} outside 0..{num_classes - 1} and {VOID} (void)",
                         "class masks must keep VOC's raw palette indices (a mask converted to "
                         f"grayscale or colour loses them): {RESTORE}", kind="bad_class_index", key=key)
    return VocImage(key, jpeg, class_map, object_map)


def _read_bytes(path: Path, key: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise _missing_file(path, key) from None


def _check_jpeg(path: Path, data: bytes, key: str) -> tuple[int, int]:
    """(width, height) of a complete, decodable JPEG; anything else raises.

    The decode runs at 1/8 scale (libjpeg's DCT scaling): it still parses the whole entropy-coded stream, so it
    catches truncated and corrupt files for a fraction of a full decode's cost. The end-marker check catches a file
    cut so close to its end that the decoder does not notice.
    """
    def corrupt(reason: str) -> InputError:
        return InputError(path, reason, RESTORE, kind="corrupt_jpeg", key=key)

    if not data.startswith(b"\xff\xd8"):
        raise corrupt("is not a JPEG file (no JPEG start marker)")
    if data.rfind(_EOI, max(0, len(data) - _EOI_WINDOW)) < 0:
        raise corrupt("is truncated or corrupt (no JPEG end marker at its end)")
    try:
        with Image.open(io.BytesIO(data), formats=["JPEG"]) as image:
            size = image.size
            image.draft("RGB", (max(1, size[0] // 8), max(1, size[1] // 8)))
            image.load()
    except Exception as error:  # PIL raises many types on hostile bytes; all mean "not a readable JPEG"
        raise corrupt(f"is not a readable JPEG ({error})") from None
    return size


def _read_mask(path: Path, key: str) -> np.ndarray:
    """A mask PNG's raw palette (or grayscale) indices as H×W uint8."""
    try:
        with Image.open(path) as image:
            fmt, mode = image.format, image.mode
            image.load()
            indices = np.asarray(image) if mode in ("P", "L") else None
    except FileNotFoundError:
        raise _missing_file(path, key) from None
    except Exception as error:  # PIL raises many types on hostile bytes; all mean "not a readable PNG"
        raise InputError(path, f"is not a readable PNG ({error})", RESTORE, kind="corrupt_png", key=key) from None
    if fmt != "PNG":
        raise InputError(path, f"is a {fmt} file, not a PNG", f"VOC masks must be the original palette PNGs: {RESTORE}",
                         kind="not_index_mask", key=key)
    if mode in ("RGB", "RGBA"):
        raise InputError(path, "is an RGB image, not a palette/index mask",
                         f"VOC masks must be the original palette PNGs: {RESTORE}", kind="not_index_mask", key=key)
    if indices is None:
        raise InputError(path, f"has image mode {mode}, not an 8-bit palette or index mask",
                         f"VOC masks must be the original palette PNGs: {RESTORE}", kind="not_index_mask", key=key)
    return indices
