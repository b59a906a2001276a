"""Training items: one (object, click pair) of an image for the interactive task, one image for the semantic task.

An image is decoded once and shared by all its items (numpy arrays by reference), so expanding an image into its
15 × objects pairs costs one JPEG and one PNG decode, not one per pair.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ifcn.labels import VOID
from ifcn.shards.records import Sample


@dataclass(frozen=True, eq=False)
class Item:
    """One item before augmentation.

    `labels` is the object map (interactive; the target is `labels == object_id`) or the class map (semantic), with
    255 = void. `pos`/`neg` are (K, 2) int (y, x) click arrays in image pixels (empty for the semantic task).
    """

    key: str
    image: np.ndarray
    labels: np.ndarray
    object_id: int
    pos: np.ndarray
    neg: np.ndarray

    def target(self) -> np.ndarray:
        """The loss target at the image's own resolution: {0, 1} for interactive, class ids for semantic; 255 ignored."""
        return item_target(self.labels, self.object_id)


def item_target(labels: np.ndarray, object_id: int) -> np.ndarray:
    """Object mask {0, 1} with void kept as 255 (interactive, `object_id` > 0), or the class map itself (semantic)."""
    if object_id == 0:
        return labels
    return np.where(labels == VOID, np.uint8(VOID), (labels == object_id).astype(np.uint8))


def _points(points: tuple[tuple[int, int], ...]) -> np.ndarray:
    return np.asarray(points, dtype=np.int32).reshape(-1, 2)


_NO_CLICKS = np.zeros((0, 2), np.int32)


def expand_sample(sample: Sample, task: str) -> Iterator[Item]:
    """The items of one shard sample, objects then pairs in stored order."""
    if task == "semantic":
        yield Item(sample.key, sample.image(), sample.class_map(), 0, _NO_CLICKS, _NO_CLICKS)
        return
    if not sample.clicks.num_pairs:
        return
    image, objects = sample.image(), sample.object_map()
    if image.shape[:2] != objects.shape:
        raise ValueError(f"sample {sample.key!r}: image {image.shape[:2]} and object map {objects.shape} differ in size")
    for obj in sample.clicks.objects:
        for pair in obj.pairs:
            yield Item(sample.key, image, objects, obj.id, _points(pair.pos), _points(pair.neg))
