"""The objects a NoC run evaluates: every instance of every image's object map, read from shards.

Objects come from the object map itself (ids 1..254; 0 is background, 255 void), not from the clicks the pipeline
sampled, so objects the training sampler skipped (small, thin) are evaluated too. An object therefore always has
at least one pixel, and its pixels are never void, so its IoU is always defined. `min_area` restricts the set;
objects below it are counted under `below_min_area`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ifcn.labels import VOID, object_class, object_ids
from ifcn.shards.counts import read_counted
from ifcn.shards.manifest import ShardSet
from ifcn.shards.reader import sample_errors

SKIP_BELOW_MIN_AREA = "below_min_area"


@dataclass(frozen=True, eq=False)
class EvalObject:
    """One object to evaluate. `image` and `ignore` are shared (same arrays) by all objects of an image."""

    index: int  # position in the evaluation order: logs are reported in this order
    key: str
    object_id: int
    cls: int
    area: int
    image: np.ndarray  # (H, W, 3) uint8 RGB
    gt: np.ndarray  # (H, W) bool
    ignore: np.ndarray  # (H, W) bool, the void pixels
    name: str = ""  # the image's name in its dataset (`ifcn.keys`); the key when not given

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.key)

    @property
    def shape(self) -> tuple[int, int]:
        return self.gt.shape


def eval_objects_of_image(key: str, image: np.ndarray, object_map: np.ndarray, class_map: np.ndarray, min_area: int,
                  skipped: Counter, start: int = 0, name: str = "") -> list[EvalObject]:
    """The objects of one image (named `name` in its dataset) in increasing id order, numbered from `start`; small
    ones counted in `skipped`."""
    if image.shape[:2] != object_map.shape:
        raise ValueError(f"sample {key!r}: image {image.shape[:2]} and object map {object_map.shape} differ")
    ignore = object_map == VOID
    objects: list[EvalObject] = []
    for object_id in object_ids(object_map):
        gt = object_map == object_id
        area = int(np.count_nonzero(gt))
        if area < min_area:
            skipped[SKIP_BELOW_MIN_AREA] += 1
            continue
        cls = object_class(class_map[gt])
        objects.append(EvalObject(start + len(objects), key, object_id, cls, area, image, gt, ignore, name))
    return objects


def iter_objects(shards: ShardSet, min_area: int = 0, limit: int | None = None, skipped: Counter | None = None, *,
                 check_digest: bool = True) -> Iterator[EvalObject]:
    """Every object of the shards (at most `limit`), numbered in reading order; skips are counted in `skipped`.
    Every shard read to its end is checked against its manifest entry, and a sample that does not decode (a corrupt
    mask) is an `InputError` naming its shard and key."""
    skipped = Counter() if skipped is None else skipped
    count = 0
    for location, sample in read_counted(shards, check_digest=check_digest):
        with sample_errors(location, sample.key):
            found = eval_objects_of_image(sample.key, sample.image(), sample.object_map(), sample.class_map(),
                                          min_area, skipped, start=count, name=sample.clicks.name)
        for obj in found:
            if limit is not None and count >= limit:
                return
            count += 1
            yield obj
