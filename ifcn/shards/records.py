"""The shard sample: one image with its stored bytes (JPEG or PNG), index masks and sampled clicks.

This is the contract between `ifcn-prep` (writer), `ifcn-train` and `ifcn-eval` (readers). Every shard format
stores exactly these fields; `Sample.to_fields` / `Sample.from_fields` are the only place where they are named.
Each sample carries a sha256 digest of its other fields, checked whenever it is read, so flipped bytes are caught
before anything is trained on, whichever part of a shard (or which slice of it) a reader reads.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

#: Field names inside a shard (webdataset member suffixes; HDF5 dataset names replace "." by "_"). A sample holds
#: exactly one image field, named by the type of the bytes stored: `jpg` (JPEG) or `png` (PNG).
FIELD_JPEG = "jpg"
FIELD_PNG = "png"
IMAGE_FIELDS = (FIELD_JPEG, FIELD_PNG)
FIELD_CLASS = "cls.png"
FIELD_OBJECT = "obj.png"
FIELD_CLICKS = "clicks.json"
FIELD_DIGEST = "sha256"
#: The fields after the image field, in the order the digest covers them (the image field comes first).
LABEL_FIELDS = (FIELD_CLASS, FIELD_OBJECT, FIELD_CLICKS)
#: Every field name a shard may hold.
FIELDS = (*IMAGE_FIELDS, *LABEL_FIELDS, FIELD_DIGEST)
#: The first bytes of each stored image type.
_MAGIC = {FIELD_JPEG: b"\xff\xd8\xff", FIELD_PNG: b"\x89PNG\r\n\x1a\n"}

Point = tuple[int, int]  # (y, x) in pixels of the original image


@dataclass(frozen=True)
class ClickPair:
    """One simulated interaction: positive and negative clicks drawn with one negative strategy (1, 2 or 3)."""

    strategy: int
    pos: tuple[Point, ...]
    neg: tuple[Point, ...]

    def to_json(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "pos": [list(p) for p in self.pos], "neg": [list(p) for p in self.neg]}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ClickPair:
        return cls(int(d["strategy"]), tuple((int(y), int(x)) for y, x in d["pos"]),
                   tuple((int(y), int(x)) for y, x in d["neg"]))


@dataclass(frozen=True)
class ObjectClicks:
    """The click pairs of one object (instance id `id` in the object map, VOC class `cls`, `area` pixels)."""

    id: int
    cls: int
    area: int
    pairs: tuple[ClickPair, ...]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "class": self.cls, "area": self.area, "pairs": [p.to_json() for p in self.pairs]}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ObjectClicks:
        return cls(int(d["id"]), int(d["class"]), int(d["area"]), tuple(ClickPair.from_json(p) for p in d["pairs"]))


@dataclass(frozen=True)
class SkippedObject:
    """An object left out of training, with the reason (for example `small` or `no_positive_candidate`)."""

    id: int
    cls: int
    area: int
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "class": self.cls, "area": self.area, "reason": self.reason}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SkippedObject:
        return cls(int(d["id"]), int(d["class"]), int(d["area"]), str(d["reason"]))


@dataclass(frozen=True)
class ImageClicks:
    """Everything sampled for one image: its size, its kept objects and its skipped objects. `name` is the image's
    name in its dataset (a file stem, a split-file id, a COCO file name), shown to users; `key` is its shard key
    (`ifcn.keys`). Without a name (shards written before names were kept) the name is the key."""

    key: str
    height: int
    width: int
    objects: tuple[ObjectClicks, ...]
    skipped: tuple[SkippedObject, ...] = ()
    name: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.key)

    @property
    def num_pairs(self) -> int:
        return sum(len(o.pairs) for o in self.objects)

    def to_json_bytes(self) -> bytes:
        payload = {"key": self.key, "name": self.name, "height": self.height, "width": self.width,
                   "objects": [o.to_json() for o in self.objects], "skipped": [s.to_json() for s in self.skipped]}
        return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def from_json_bytes(cls, data: bytes | str) -> ImageClicks:
        """Parse and check: every click must lie inside the image (a reader must never index outside it)."""
        d = json.loads(data)
        clicks = cls(str(d["key"]), int(d["height"]), int(d["width"]),
                     tuple(ObjectClicks.from_json(o) for o in d["objects"]),
                     tuple(SkippedObject.from_json(s) for s in d.get("skipped", ())), str(d.get("name", "")))
        for obj in clicks.objects:
            for pair in obj.pairs:
                outside = [p for p in (*pair.pos, *pair.neg)
                           if not (0 <= p[0] < clicks.height and 0 <= p[1] < clicks.width)]
                if outside:
                    raise ValueError(f"object {obj.id} has click (y, x) = {outside[0]} outside the "
                                     f"{clicks.height}×{clicks.width} image")
        return clicks


def image_field(data: bytes) -> str:
    """The field an image's bytes are stored under (`jpg` or `png`), from their type; ValueError for anything else."""
    for field, magic in _MAGIC.items():
        if data.startswith(magic):
            return field
    raise ValueError(f"image bytes are neither JPEG nor PNG (they start with {data[:8]!r})")


@dataclass(frozen=True)
class Sample:
    """One shard sample. `image_bytes` holds the source's JPEG or PNG bytes untouched (other formats are converted to
    PNG, losslessly, before they get here); masks are single-channel index PNGs."""

    key: str
    image_bytes: bytes
    class_png: bytes
    object_png: bytes
    clicks: ImageClicks

    @property
    def image_field(self) -> str:
        return image_field(self.image_bytes)

    def to_fields(self) -> dict[str, bytes]:
        """Every field as stored, the digest of the payload fields included."""
        payload = {self.image_field: self.image_bytes, FIELD_CLASS: self.class_png, FIELD_OBJECT: self.object_png,
                   FIELD_CLICKS: self.clicks.to_json_bytes()}
        return {**payload, FIELD_DIGEST: payload_digest(payload).encode()}

    @classmethod
    def from_fields(cls, key: str, fields: dict[str, bytes], *, check_digest: bool = True) -> Sample:
        """The sample stored as `fields`; ValueError when a field is missing, the image field is not exactly one of
        `jpg`/`png` or names another type than its bytes, the digest differs (corrupt bytes) or the clicks do not fit
        the image. `check_digest=False` skips the digest (for data verified already)."""
        images = [f for f in IMAGE_FIELDS if f in fields]
        missing = [f for f in (*LABEL_FIELDS, FIELD_DIGEST) if f not in fields] + ([] if images else ["jpg or png"])
        if missing:
            raise ValueError(f"sample {key!r} lacks field(s) {missing}; shards must be written by this version of "
                             "`ifcn-prep sample` (older ones have no per-sample checksum): rerun it")
        if len(images) > 1:
            raise ValueError(f"sample {key!r} holds two image fields {images}; a sample has one image")
        if check_digest and fields[FIELD_DIGEST].decode(errors="replace") != payload_digest(fields):
            raise ValueError(f"sample {key!r} is corrupt: its bytes do not match the sha256 stored with it")
        data = fields[images[0]]
        if image_field(data) != images[0]:
            raise ValueError(f"sample {key!r}: its {images[0]} field holds {image_field(data)} bytes")
        return cls(key, data, fields[FIELD_CLASS], fields[FIELD_OBJECT],
                   ImageClicks.from_json_bytes(fields[FIELD_CLICKS]))

    def class_map(self) -> np.ndarray:
        return decode_mask(self.class_png)

    def object_map(self) -> np.ndarray:
        return decode_mask(self.object_png)

    def image(self) -> np.ndarray:
        return decode_dataset_image(self.image_bytes)


def payload_digest(fields: dict[str, bytes]) -> str:
    """sha256 (hex) over the payload fields (the image field, then the label fields), each framed as its name, its
    length and its bytes: unambiguous, and the image field's name (so its type) is covered too."""
    digest = hashlib.sha256()
    names = [f for f in IMAGE_FIELDS if f in fields][:1] + list(LABEL_FIELDS)
    for name in names:
        data = fields[name]
        digest.update(f"{name}:{len(data)}:".encode())
        digest.update(data)
    return digest.hexdigest()


def encode_mask(mask: np.ndarray) -> bytes:
    """Encode an index map (uint8, H×W; 255 = void) as a grayscale PNG that keeps every index exactly.

    Grayscale rather than palette: OpenCV decodes it straight to indices (a palette PNG would be expanded to colours),
    and the bytes are a pure function of the array, so reruns give byte-identical shards.
    """
    if mask.dtype != np.uint8 or mask.ndim != 2:
        raise ValueError(f"an index mask must be a 2-D uint8 array, got {mask.dtype} with shape {mask.shape}")
    # zlib level 6: on VOC-like masks 4x faster than level 9 for 1.25x its bytes, and 0.7x the bytes of the RLE
    # strategy (bench/bench_prep.py keeps shards within 1.15x of the source files).
    ok, buf = cv2.imencode(".png", mask, [cv2.IMWRITE_PNG_COMPRESSION, 6])
    if not ok:
        raise ValueError("OpenCV could not encode the mask as PNG")
    return buf.tobytes()


def decode_mask(data: bytes) -> np.ndarray:
    """Decode a mask PNG written by `encode_mask` to its uint8 index map."""
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None or arr.ndim != 2:
        raise ValueError("not a single-channel PNG index mask")
    return arr


#: How every tool decodes stored images: 8-bit colour, and the EXIF orientation tag ignored, because masks are drawn
#: on the stored pixels (OpenCV would otherwise rotate a tagged JPEG away from its masks). `ifcn-prep` checks sizes
#: with decoders that ignore the tag too.
IMREAD_IMAGE = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION


def decode_dataset_image(data: bytes) -> np.ndarray:
    """Decode a dataset image's JPEG or PNG bytes to an RGB uint8 array (H×W×3) of the stored pixels (no EXIF
    rotation: its masks are drawn on them). Users' photos are decoded as displayed instead
    (`ifcn.trainer.inference.images.decode_user_photo`)."""
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), IMREAD_IMAGE)
    if arr is None:
        raise ValueError("corrupt or truncated image data")
    return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
