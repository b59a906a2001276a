"""The annotation project folder: every finished object is one JSON file, written atomically the moment it is finished.

Layout of `--out`:

    project.json                       the image folder and the labels (written once, checked on reopening)
    objects/<image file>/<id>.json     one finished object: label, creation time, the clicks and brush strokes that
                                       made it, and its full-size mask as COCO RLE (display orientation: EXIF applied)
    done/<image file>                  marker: the user marked the image done

Each object file is written under a temporary name and renamed (`ifcn.io.write_json`), so a `kill -9` leaves either
the whole object or none, and what is on disk is only ever finished objects. Object ids are random, so two tabs on
one image add objects side by side and never overwrite each other's; editing one object in two tabs keeps the last
write. Overlap rule: objects are painted in creation order, later on top; a redone (edited) object keeps its place.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as coco_mask

from ifcn.io import write_json
from ifcn.trainer.annotate.project_labels import DEFAULT_LABELS, check_labels

PROJECT_FILE, OBJECTS, DONE = "project.json", "objects", "done"
FORMAT = "ifcn-annotate/1"


def encode_mask(mask: np.ndarray) -> dict[str, Any]:
    """COCO compressed RLE of a bool (H, W) mask, JSON-ready (counts as a string)."""
    rle = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def decode_mask(rle: dict[str, Any]) -> np.ndarray:
    """The bool (H, W) mask of `encode_mask`'s output."""
    return coco_mask.decode({"size": rle["size"], "counts": rle["counts"].encode("ascii")}).astype(bool)


@dataclass(frozen=True)
class AnnotatedObject:
    """A finished object. `actions` replay it (clicks `{"x", "y", "positive"}` and strokes `{"points", "radius",
    "erase"}` in order); `created` (ns) fixes its paint order."""

    id: str
    label: str
    created: int
    mask: np.ndarray = field(repr=False)
    actions: tuple[dict[str, Any], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "label": self.label, "created": self.created, "actions": list(self.actions),
                "mask": encode_mask(self.mask)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AnnotatedObject:
        return cls(str(data["id"]), str(data["label"]), int(data["created"]), decode_mask(data["mask"]),
                   tuple(data.get("actions", ())))


def new_object_id() -> str:
    return secrets.token_hex(8)


def paint_order(objects: list[AnnotatedObject]) -> list[AnnotatedObject]:
    """The overlap rule: creation order, later on top (ties broken by id so every reader agrees)."""
    return sorted(objects, key=lambda o: (o.created, o.id))


def instance_map(objects: list[AnnotatedObject], size: tuple[int, int]) -> np.ndarray:
    """(H, W) int32 map of object positions 1..N in paint order (0 background): what each pixel shows."""
    out = np.zeros(size, np.int32)
    for i, obj in enumerate(paint_order(objects), 1):
        out[obj.mask] = i
    return out


class ProjectStore:
    """Reads and writes one project folder; safe for concurrent requests (every write is one atomic rename)."""

    def __init__(self, root: Path, images: Path, labels: tuple[str, ...] | None) -> None:
        self.root = Path(root)
        self.images = Path(images).resolve()
        project = self.root / PROJECT_FILE
        if project.exists():
            stored = self._read_project(project)
            if labels is not None and tuple(labels) != tuple(stored["labels"]):
                raise ValueError(f"--labels: {project} was annotated with the labels {stored['labels']}; give the "
                                 "same labels file (or none, to keep them), or start a new --out folder")
            labels = tuple(stored["labels"])
        elif self.root.exists() and any(self.root.iterdir()):
            raise ValueError(f"--out {self.root}: a folder with other files and no {PROJECT_FILE}; give an empty or "
                             "new folder (or an existing annotation project)")
        self.labels = check_labels(tuple(labels) if labels is not None else DEFAULT_LABELS, "--labels")
        if not project.exists():
            self.root.mkdir(parents=True, exist_ok=True)
            write_json(project, {"format": FORMAT, "images": str(self.images), "labels": list(self.labels)})
        (self.root / OBJECTS).mkdir(exist_ok=True)
        (self.root / DONE).mkdir(exist_ok=True)

    @staticmethod
    def _read_project(path: Path) -> dict[str, Any]:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise ValueError(f"{path}: not a readable annotation project file ({e}); restore it or use a new --out") \
                from None
        if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("labels"), list):
            raise ValueError(f"{path}: not an ifcn annotation project ({FORMAT}); use a new --out folder")
        return data

    @classmethod
    def open(cls, root: Path) -> ProjectStore:
        """An existing project (for export): its image folder and labels from `project.json`."""
        path = Path(root) / PROJECT_FILE
        if not path.is_file():
            raise ValueError(f"{root}: no {PROJECT_FILE}; pass the --out folder of `ifcn-eval annotate`")
        return cls(root, Path(cls._read_project(path)["images"]), None)

    def _folder(self, image: str) -> Path:
        return self.root / OBJECTS / image

    def objects(self, image: str) -> list[AnnotatedObject]:
        """The image's finished objects in paint order (temporaries of a killed write are not objects)."""
        folder = self._folder(image)
        if not folder.is_dir():
            return []
        return paint_order([AnnotatedObject.from_json(json.loads(p.read_text()))
                            for p in folder.glob("*.json") if not p.name.startswith(".")])

    def get(self, image: str, object_id: str) -> AnnotatedObject | None:
        path = self._folder(image) / f"{object_id}.json"
        if not object_id.isalnum() or not path.is_file():
            return None
        return AnnotatedObject.from_json(json.loads(path.read_text()))

    def save(self, image: str, obj: AnnotatedObject) -> None:
        if obj.label not in self.labels:
            raise ValueError(f"unknown label {obj.label!r}; the project's labels are {list(self.labels)}")
        folder = self._folder(image)
        folder.mkdir(exist_ok=True)
        write_json(folder / f"{obj.id}.json", obj.to_json())

    def delete(self, image: str, object_id: str) -> bool:
        path = self._folder(image) / f"{object_id}.json"
        if not object_id.isalnum() or not path.is_file():
            return False
        path.unlink(missing_ok=True)
        return True

    def is_done(self, image: str) -> bool:
        return (self.root / DONE / image).is_file()

    def set_done(self, image: str, done: bool) -> None:
        marker = self.root / DONE / image
        if done:
            marker.touch()
        else:
            marker.unlink(missing_ok=True)

    def annotated_images(self) -> list[str]:
        """Images with at least one object or marked done, sorted by name."""
        with_objects = {p.parent.name for p in (self.root / OBJECTS).glob("*/*.json") if not p.name.startswith(".")}
        done = {p.name for p in (self.root / DONE).iterdir() if p.is_file()}
        return sorted(with_objects | done)


def now_ns() -> int:
    return time.time_ns()
