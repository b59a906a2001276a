"""`ifcn-eval annotate-export`: a project as a VOC 2012 layout and a COCO instances JSON, both readable by
`ifcn-prep sample --source voc|coco`.

Masks go out at the image file's stored size and orientation: the page shows photos with their EXIF orientation
applied, while VOC/COCO masks (and `ifcn-prep`) refer to the stored pixels, so each mask is turned back first. What a
pixel shows follows the project's overlap rule (later objects on top); the COCO segmentations are those visible
parts too, so both exports hold the same instances. Objects hidden entirely by later ones are left out (counted).

    OUT/VOC2012/JPEGImages/<stem>.jpg            the image (a JPEG's own bytes; other formats re-encoded, quality 95)
    OUT/VOC2012/SegmentationObject/<stem>.png    palette PNG, instance ids 1..N in paint order
    OUT/VOC2012/SegmentationClass/<stem>.png     palette PNG, label index + 1 (0 background)
    OUT/VOC2012/ImageSets/Segmentation/<split>.txt
    OUT/annotations/instances_<split>.json        COCO: file_name relative to the project's --images folder
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pycocotools import mask as coco_mask

from ifcn.io import atomic_path, atomic_write_bytes, write_json
from ifcn.palette import save_index_png
from ifcn.trainer.annotate.store import ProjectStore, instance_map, paint_order
from ifcn.trainer.inference.images import EXIF_ORIENTATION

FORMATS = ("voc", "coco")
#: Instance ids 1..254 fit an object map (255 is VOC's void).
MAX_OBJECTS = 254
#: The transposition that undoes each EXIF orientation (PIL's `exif_transpose` applies the inverse ones).
UNDO_ORIENTATION = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
                    4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_90,
                    7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_270}


@dataclass(frozen=True)
class ExportSummary:
    images: int
    image_folder: Path
    objects: int
    hidden: int
    voc_root: Path | None
    coco_json: Path | None


def stored_orientation(mask: np.ndarray, orientation: int) -> np.ndarray:
    """A mask drawn on the EXIF-oriented image, turned back onto the file's stored pixels."""
    op = UNDO_ORIENTATION.get(orientation)
    if op is None:
        return mask
    return np.asarray(Image.fromarray(mask).transpose(op))


def _key(name: str) -> str:
    """The VOC id of an image file: its stem, whitespace replaced (split files are one id per line)."""
    return re.sub(r"\s", "_", Path(name).stem)


def _jpeg_bytes(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as image:
        if image.format == "JPEG":
            return data
        out = io.BytesIO()
        image.convert("RGB").save(out, format="JPEG", quality=95)
        return out.getvalue()


def export_project(project: Path, out: Path, formats: tuple[str, ...] = FORMATS, split: str = "train") -> ExportSummary:
    """Write the project's annotated images (with objects, or marked done) as VOC and/or COCO under `out`."""
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ValueError(f"--format must be among {FORMATS}, got {formats}")
    if not re.fullmatch(r"[A-Za-z0-9_-]+", split):
        raise ValueError(f"--split {split!r}: use letters, digits, _ and - only (it names files)")
    store = ProjectStore.open(project)
    names = [n for n in store.annotated_images() if (store.images / n).is_file()]
    keys = [_key(n) for n in names]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if "voc" in formats and twice:
        raise ValueError(f"images {[n for n in names if _key(n) in twice]} share the VOC id(s) {twice}; rename "
                         "all but one (VOC names files by stem)")
    voc = Path(out) / "VOC2012"
    if "voc" in formats:
        for sub in ("JPEGImages", "SegmentationObject", "SegmentationClass", "ImageSets/Segmentation"):
            (voc / sub).mkdir(parents=True, exist_ok=True)
    coco: dict[str, Any] = {"images": [], "annotations": [], "categories": [
        {"id": i, "name": name, "supercategory": "object"} for i, name in enumerate(store.labels, 1)]}
    total = hidden = 0
    for image_id, (name, key) in enumerate(zip(names, keys, strict=True), 1):
        data = (store.images / name).read_bytes()
        with Image.open(io.BytesIO(data)) as opened:
            orientation = opened.getexif().get(EXIF_ORIENTATION, 1)
            width, height = opened.size
        objects = paint_order(store.objects(name))
        if len(objects) > MAX_OBJECTS:
            raise ValueError(f"{name}: {len(objects)} objects; a VOC object map holds at most {MAX_OBJECTS}")
        if objects:
            shown = stored_orientation(instance_map(objects, objects[0].mask.shape).astype(np.uint8), orientation)
        else:
            shown = np.zeros((height, width), np.uint8)
        if shown.shape != (height, width):
            raise ValueError(f"{store.root}: the objects of {name} are {shown.shape[1]}x{shown.shape[0]}, the image "
                             f"is {width}x{height}: the image file changed after annotating; annotate it again")
        classes = np.zeros_like(shown)
        coco["images"].append({"id": image_id, "file_name": name, "height": height, "width": width})
        for index, obj in enumerate(objects, 1):
            visible = shown == index
            if not visible.any():
                hidden += 1
                continue
            total += 1
            classes[visible] = store.labels.index(obj.label) + 1
            rle = coco_mask.encode(np.asfortranarray(visible.astype(np.uint8)))
            coco["annotations"].append({
                "id": len(coco["annotations"]) + 1, "image_id": image_id, "iscrowd": 0,
                "category_id": store.labels.index(obj.label) + 1, "area": int(visible.sum()),
                "bbox": [float(v) for v in coco_mask.toBbox(rle)],
                "segmentation": {"size": [height, width], "counts": rle["counts"].decode("ascii")}})
        if "voc" in formats:
            atomic_write_bytes(voc / "JPEGImages" / f"{key}.jpg", _jpeg_bytes(data))
            for folder, labels in (("SegmentationObject", shown), ("SegmentationClass", classes)):
                with atomic_path(voc / folder / f"{key}.png") as tmp:
                    save_index_png(labels, tmp)
    if "voc" in formats:
        listing = "".join(f"{k}\n" for k in keys).encode()
        atomic_write_bytes(voc / "ImageSets" / "Segmentation" / f"{split}.txt", listing)
    coco_json = Path(out) / "annotations" / f"instances_{split}.json"
    if "coco" in formats:
        coco_json.parent.mkdir(parents=True, exist_ok=True)
        write_json(coco_json, coco)
    return ExportSummary(len(names), store.images, total, hidden, voc if "voc" in formats else None,
                         coco_json if "coco" in formats else None)
