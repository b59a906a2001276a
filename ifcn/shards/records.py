"""The shard sample: one VOC image with its original JPEG bytes, index masks and sampled clicks.

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

#: Field names inside a shard (webdataset member suffixes; HDF5 dataset names replace "." by "_").
FIELD_JPEG = "jpg"
FIELD_CLASS = "cls.png"
FIELD_OBJECT = "obj.png"
FIELD_CLICKS = "clicks.json"
FIELD_DIGEST = "sha256"
#: The payload fields, in the order the digest covers them.
PAYLOAD_FIELDS = (FIELD_JPEG, FIELD_CLASS, FIELD_OBJECT, FIELD_CLICKS)
FIELDS = (*PAYLOAD_FIELDS, FIELD_DIGEST)

Point = tuple[int, int]  # (y, x) in pixels of the original image
#: Index of void pixels (object boundaries, ambiguous regions) in class and object maps: ignored, never a label.
VOID = 255


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
    """Everything sampled for one image: its size, its kept objects and its skipped objects."""

    key: str
    height: int
    width: int
    objects: tuple[ObjectClicks, ...]
    skipped: tuple[SkippedObject, ...] = ()

    @property
    def num_pairs(self) -> int:
        return sum(len(o.pairs) for o in self.objects)

    def to_json_bytes(self) -> bytes:
        payload = {"key": self.key, "height": self.height, "width": self.width,
                   "objects": [o.to_json() for o in self.objects], "skipped": [s.to_json() for s in self.skipped]}
        return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def from_json_bytes(cls, data: bytes | str) -> ImageClicks:
        """Parse and check: every click must lie inside the image (a reader must never index outside it)."""
        d = json.loads(data)
        clicks = cls(str(d["key"]), int(d["height"]), int(d["width"]),
                     tuple(ObjectClicks.from_json(o) for o in d["objects"]),
                     tuple(SkippedObject.from_json(s) for s in d.get("skipped", ())))
        for obj in clicks.objects:
            for pair in obj.pairs:
                outside = [p for p in (*pair.pos, *pair.neg)
                           if not (0 <= p[0] < clicks.height and 0 <= p[1] < clicks.width)]
                if outside:
                    raise ValueError(f"object {obj.id} has click (y, x) = {outside[0]} outside the "
                                     f"{clicks.height}×{clicks.width} image")
        return clicks


@dataclass(frozen=True)
class Sample:
    """One shard sample. `jpeg` holds the source file's bytes untouched; masks are single-channel index PNGs."""

    key: str
    jpeg: bytes
    class_png: bytes
    object_png: bytes
    clicks: ImageClicks

    def to_fields(self) -> dict[str, bytes]:
        """Every field as stored, the digest of the payload fields included."""
        payload = {FIELD_JPEG: self.jpeg, FIELD_CLASS: self.class_png, FIELD_OBJECT: self.object_png,
                   FIELD_CLICKS: self.clicks.to_json_bytes()}
        return {**payload, FIELD_DIGEST: payload_digest(payload).encode()}

    @classmethod
    def from_fields(cls, key: str, fields: dict[str, bytes], *, check_digest: bool = True) -> Sample:
        """The sample stored as `fields`; ValueError when a field is missing, the digest differs (corrupt bytes)
        or the clicks do not fit the image. `check_digest=False` skips the digest (for data verified already)."""
        missing = [f for f in FIELDS if f not in fields]
        if missing:
            raise ValueError(f"sample {key!r} lacks field(s) {missing}; shards must be written by this version of "
                             "`ifcn-prep sample` (older ones have no per-sample checksum): rerun it")
        if check_digest and fields[FIELD_DIGEST].decode(errors="replace") != payload_digest(fields):
            raise ValueError(f"sample {key!r} is corrupt: its bytes do not match the sha256 stored with it")
        return cls(key, fields[FIELD_JPEG], fields[FIELD_CLASS], fields[FIELD_OBJECT],
                   ImageClicks.from_json_bytes(fields[FIELD_CLICKS]))

    def class_map(self) -> np.ndarray:
        return decode_mask(self.class_png)

    def object_map(self) -> np.ndarray:
        return decode_mask(self.object_png)

    def image(self) -> np.ndarray:
        return decode_jpeg(self.jpeg)


def payload_digest(fields: dict[str, bytes]) -> str:
    """sha256 (hex) over the payload fields, each as its name, its length and its bytes (unambiguous framing)."""
    digest = hashlib.sha256()
    for name in PAYLOAD_FIELDS:
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


def decode_jpeg(data: bytes) -> np.ndarray:
    """Decode JPEG bytes to an RGB uint8 array (H×W×3)."""
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if arr is None:
        raise ValueError("corrupt or truncated JPEG data")
    return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
