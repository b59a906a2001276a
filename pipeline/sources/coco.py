"""COCO-style instance annotations (`instances_*.json`; spec §8): the format most users' own data comes in (CVAT, Label
Studio and others export it). `--coco-images DIR --coco-json FILE`; the split is named after the file
(`instances_val2017.json` -> `val2017`) unless `--split` says otherwise.

Segmentations are polygons or RLE (compressed or not), decoded with `pycocotools`. Objects are painted largest first,
so a smaller object lying on a larger one stays visible; their ids 1..N follow that order. `iscrowd` regions become
ignore (255) where no object covers them. The class map holds the category ids, which therefore must lie within
1..254 (COCO's own are 1..90); the clicks JSON keeps them as each object's class. A sample's key is the image id
(always a safe key); its name, kept in the clicks JSON, is the image's `file_name` (which may hold spaces or folders).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from pycocotools import mask as coco_mask

from ifcn.errors import InputError
from ifcn.labels import VOID
from ifcn.pipeline.sources import ImageRef, Listing, SourceImage, SourceSpec
from ifcn.pipeline.sources.files import list_files, missing_file, read_image
from ifcn.pipeline.synth import SHAPE_CLASSES, SynthConfig, encode_jpeg, image_ids, image_number, render_image

MAX_CATEGORY = 254
FIX_JSON = "fix the annotation file (COCO format: images, annotations and categories lists) or export it again"
RESTORE = "restore the image file, or remove the image and its annotations from the annotation file"
#: Synthetic layout: COCO's own folder names.
SYNTH_IMAGES, SYNTH_ANNOTATIONS = "{split}2017", "annotations/instances_{split}2017.json"
#: Every how many synthetic images one is a PNG, every how many of a split's images (the first included) one has a
#: crowd region, and the objects below this area (or with holes, which polygons cannot express) get RLE.
SYNTH_PNG_EVERY, SYNTH_CROWD_EVERY, SYNTH_POLYGON_MIN_AREA = 4, 3, 400


@dataclass(frozen=True)
class CocoAnnotation:
    """One annotation as the JSON gives it (the segmentation is decoded by the worker)."""

    id: int
    category: int
    crowd: bool
    segmentation: Any


@dataclass(frozen=True)
class CocoImage:
    """What a worker needs to build one image: its file, its size as the JSON says, and its annotations."""

    file_name: str
    height: int
    width: int
    annotation_file: str
    annotations: tuple[CocoAnnotation, ...]


def _bad(path: Path, reason: str, key: str | None = None) -> InputError:
    return InputError(path, reason, FIX_JSON, kind="bad_annotation", key=key)


def _whole(value: Any, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def read_annotation_file(path: Path) -> tuple[dict[str, Any], str]:
    """The parsed JSON and its sha256; errors name the file."""
    try:
        data = path.read_bytes()
    except (FileNotFoundError, IsADirectoryError):
        raise InputError(path, "missing annotation file", "pass the instances_*.json file with --coco-json",
                         kind="missing_file") from None
    try:
        parsed = json.loads(data)
    except (ValueError, UnicodeDecodeError) as error:
        raise InputError(path, f"is not valid JSON ({error})", FIX_JSON, kind="bad_annotation") from None
    if not isinstance(parsed, dict) or not all(isinstance(parsed.get(k), list) for k in ("images", "annotations")):
        raise _bad(path, "is not a COCO annotation file: it needs `images` and `annotations` lists")
    return parsed, hashlib.sha256(data).hexdigest()


def _categories(path: Path, parsed: dict[str, Any]) -> set[int]:
    ids = set()
    for category in parsed.get("categories", []):
        cid = category.get("id") if isinstance(category, dict) else None
        if not _whole(cid, 1) or cid > MAX_CATEGORY:
            raise InputError(path, f"category id {cid!r} does not fit the 8-bit class map (ids must be "
                             f"1..{MAX_CATEGORY}, 0 being background and {VOID} ignore)",
                             "renumber the categories 1..254 in the file",
                             kind="bad_category")
        ids.add(cid)
    return ids


def _images(path: Path, parsed: dict[str, Any]) -> dict[int, dict[str, Any]]:
    images: dict[int, dict[str, Any]] = {}
    for i, image in enumerate(parsed["images"]):
        ok = isinstance(image, dict) and _whole(image.get("id"), 0) and isinstance(image.get("file_name"), str) \
            and _whole(image.get("height"), 1) and _whole(image.get("width"), 1)
        if not ok:
            raise _bad(path, f"images[{i}] needs a whole-number id, a file_name and positive height and width")
        if image["id"] in images:
            raise _bad(path, f"image id {image['id']} is listed twice")
        images[image["id"]] = image
    return images


def _annotations(path: Path, parsed: dict[str, Any], images: dict[int, Any],
                 categories: set[int]) -> dict[int, list[CocoAnnotation]]:
    by_image: dict[int, list[CocoAnnotation]] = {i: [] for i in images}
    for i, ann in enumerate(parsed["annotations"]):
        if not isinstance(ann, dict) or "segmentation" not in ann:
            raise _bad(path, f"annotations[{i}] has no segmentation")
        aid, image_id, category = ann.get("id", i), ann.get("image_id"), ann.get("category_id")
        if image_id not in by_image:
            raise _bad(path, f"annotation {aid} refers to image id {image_id!r}, which the file's `images` list does "
                       "not hold")
        if categories and category not in categories:
            raise _bad(path, f"annotation {aid} has category id {category!r}, which the file's `categories` list "
                       "does not hold")
        if not _whole(category, 1) or category > MAX_CATEGORY:
            raise InputError(path, f"annotation {aid} has category id {category!r}, outside 1..{MAX_CATEGORY}",
                             "renumber the categories 1..254 in the file", kind="bad_category")
        by_image[image_id].append(CocoAnnotation(int(aid), category, bool(ann.get("iscrowd", 0)), ann["segmentation"]))
    return by_image


def _present(root: Path, names: list[str]) -> set[str]:
    """The file names (relative to `root`) among `names` that are files: one folder listing for bare names."""
    listed = list_files(root, "pass the folder holding the images with --coco-images")
    return {n for n in names if (n in listed if "/" not in n else (root / n).is_file())}


def decode_segmentation(ann: CocoAnnotation, height: int, width: int, path: Path, key: str) -> np.ndarray:
    """The annotation's H×W boolean mask, from polygons, uncompressed RLE or compressed RLE."""
    seg = ann.segmentation
    try:
        if isinstance(seg, list):
            polygons = [p for p in seg if len(p) >= 6]
            if any(len(p) % 2 or not all(isinstance(v, int | float) for v in p) for p in seg):
                raise ValueError("polygons must be flat lists of x, y numbers")
            if not polygons:
                return np.zeros((height, width), bool)
            rle = coco_mask.merge(coco_mask.frPyObjects(polygons, height, width))
        elif isinstance(seg, dict) and "counts" in seg and list(seg.get("size", ())) == [height, width]:
            if isinstance(seg["counts"], list):
                if sum(seg["counts"]) != height * width:
                    raise ValueError(f"its run lengths add up to {sum(seg['counts'])}, not {height}×{width}")
                rle = coco_mask.frPyObjects(seg, height, width)
            else:
                rle = {"size": [height, width], "counts": str(seg["counts"]).encode()}
        else:
            raise ValueError(f"a segmentation must be polygons or an RLE of size [{height}, {width}]")
        with warnings.catch_warnings():  # pycocotools' Cython arrays predate NumPy 2's `copy` keyword: harmless
            warnings.simplefilter("ignore", DeprecationWarning)
            return coco_mask.decode(rle).astype(bool)
    except Exception as error:  # pycocotools raises several types on malformed input
        raise _bad(path, f"annotation {ann.id} of image {key}: unusable segmentation ({error})", key=key) from None


class CocoSource:
    """`--source coco --coco-images DIR --coco-json FILE [--split NAME]`."""

    name = "coco"
    splits: tuple[str, ...] = ()
    synth_folder = "COCO"

    def default_split(self, spec: SourceSpec) -> str | None:
        if spec.coco_json is None:
            return None
        return re.sub(r"\W", "_", Path(spec.coco_json).stem.removeprefix("instances_")) or None

    def list_split(self, spec: SourceSpec, split: str) -> Listing:
        root = Path(spec.root or ".")
        if not root.is_dir():
            raise InputError(root, "does not exist or is not a folder", "pass the folder holding the images with "
                             "--coco-images", kind="missing_folder")
        root = root.resolve()
        path = Path(spec.coco_json or "").resolve()
        parsed, sha256 = read_annotation_file(path)
        images = _images(path, parsed)
        annotations = _annotations(path, parsed, images, _categories(path, parsed))
        present = _present(root, [image["file_name"] for image in images.values()])
        refs = []
        for image_id in sorted(images):
            image, key = images[image_id], str(image_id)
            info = CocoImage(image["file_name"], image["height"], image["width"], str(path),
                             tuple(annotations[image_id]))
            problem = None if info.file_name in present else missing_file(root / info.file_name, key, RESTORE,
                                                                          f" listed in {path.name}")
            refs.append(ImageRef(key, info, problem, info.file_name))
        if not refs:
            raise InputError(path, "lists no image", FIX_JSON, kind="empty_split")
        return Listing(root, split, tuple(refs), annotation_file=str(path), annotation_sha256=sha256)

    def load(self, root: Path, ref: ImageRef) -> SourceImage:
        info: CocoImage = ref.data
        image_path, json_path = root / info.file_name, Path(info.annotation_file)
        image = read_image(image_path, ref.key, RESTORE)
        if (image.height, image.width) != (info.height, info.width):
            raise InputError(image_path, f"is {image.width}×{image.height} pixels but {json_path} says "
                             f"{info.width}×{info.height}", f"the annotation file must describe this image: {RESTORE}",
                             kind="size_mismatch", key=ref.key)
        object_map = np.zeros((info.height, info.width), np.uint8)
        class_map = np.zeros_like(object_map)
        masks = [(ann, decode_segmentation(ann, info.height, info.width, json_path, ref.key))
                 for ann in info.annotations]
        for _, mask in (m for m in masks if m[0].crowd):
            object_map[mask] = class_map[mask] = VOID
        objects = sorted((m for m in masks if not m[0].crowd), key=lambda m: (-int(m[1].sum()), m[0].id))
        if len(objects) > MAX_CATEGORY:
            raise InputError(json_path, f"image {ref.key} has {len(objects)} objects; at most {MAX_CATEGORY} fit the "
                             "8-bit object map", "split the image's annotations, or leave it out with --on-error skip",
                             kind="too_many_objects", key=ref.key)
        for object_id, (ann, mask) in enumerate(objects, 1):
            object_map[mask] = object_id
            class_map[mask] = ann.category
        return SourceImage(ref.key, image.data, object_map, class_map, (image_path,), ref.name)

    def write_synthetic(self, folder: Path, config: SynthConfig) -> None:
        """COCO's folders (`train2017/`, `val2017/`, `annotations/instances_*2017.json`): JPEG and some PNG images,
        polygons for large objects without holes, compressed RLE for the rest, and an uncompressed-RLE crowd region
        on the background of every third image. Rendered without VOC's void band, which COCO does not have."""
        config = dataclasses.replace(config, void_width=0, void_object_prob=0.0)
        (folder / "annotations").mkdir(parents=True)
        for split, keys in zip(("train", "val"), image_ids(config), strict=True):
            images_dir = folder / SYNTH_IMAGES.format(split=split)
            images_dir.mkdir()
            images, annotations = [], []
            for i, key in enumerate(keys):
                number = image_number(key)
                image = render_image(config, number)
                images.append(_write_image(images_dir, number, image.rgb, config.jpeg_quality))
                annotations += _synth_annotations(number, image.object_map, image.class_map, len(annotations),
                                                  crowd=i % SYNTH_CROWD_EVERY == 0)
            categories = [{"id": c.voc_class, "name": c.name, "supercategory": "shape"} for c in SHAPE_CLASSES]
            payload = {"info": {"description": "ifcn synthetic COCO-layout dataset"}, "licenses": [],
                       "images": images, "annotations": annotations, "categories": categories}
            (folder / SYNTH_ANNOTATIONS.format(split=split)).write_text(json.dumps(payload))


def _write_image(folder: Path, number: int, rgb: np.ndarray, quality: int) -> dict[str, Any]:
    if number % SYNTH_PNG_EVERY == 0:
        name, data = f"{number:012d}.png", cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes()
    else:
        name, data = f"{number:012d}.jpg", encode_jpeg(rgb, quality)
    (folder / name).write_bytes(data)
    return {"id": number, "file_name": name, "height": int(rgb.shape[0]), "width": int(rgb.shape[1])}


def _synth_annotations(number: int, object_map: np.ndarray, class_map: np.ndarray, first_id: int,
                       crowd: bool) -> list[dict]:
    """The annotations of one image: one per visible object, and a crowd region on its top-left background."""
    out = []
    for object_id in [i for i in range(1, VOID) if np.any(object_map == i)]:
        mask = (object_map == object_id).astype(np.uint8)
        contours, hierarchy = cv2.findContours(mask, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
        polygons = [c.reshape(-1).astype(float).tolist() for c in contours]
        use_polygons = (int(mask.sum()) >= SYNTH_POLYGON_MIN_AREA and bool(np.all(hierarchy[0][:, 3] < 0))
                        and all(len(p) >= 6 for p in polygons))
        if use_polygons:
            segmentation: Any = polygons
        else:
            rle = coco_mask.encode(np.asfortranarray(mask))
            segmentation = {"size": list(mask.shape), "counts": rle["counts"].decode()}
        out.append(_annotation(first_id + len(out) + 1, number, int(class_map[mask > 0][0]), mask, segmentation, 0))
    region = np.zeros(object_map.shape, np.uint8)
    height, width = object_map.shape
    region[: height // 4, : width // 4] = object_map[: height // 4, : width // 4] == 0
    if crowd and region.any():
        out.append(_annotation(first_id + len(out) + 1, number, SHAPE_CLASSES[0].voc_class, region,
                               {"size": list(region.shape), "counts": uncompressed_rle(region)}, 1))
    return out


def _annotation(aid: int, image_id: int, category: int, mask: np.ndarray, segmentation: Any, crowd: int) -> dict:
    ys, xs = np.nonzero(mask)
    bbox = [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]
    return {"id": aid, "image_id": image_id, "category_id": category, "segmentation": segmentation,
            "area": int(mask.sum()), "bbox": bbox, "iscrowd": crowd}


def uncompressed_rle(mask: np.ndarray) -> list[int]:
    """COCO's uncompressed RLE: run lengths over the column-major pixels, starting with a run of zeros."""
    flat = mask.ravel(order="F").astype(np.int8)
    bounds = np.concatenate([[0], np.flatnonzero(np.diff(flat)) + 1, [flat.size]])
    counts = np.diff(bounds).tolist()
    return [0, *counts] if flat[0] else counts
