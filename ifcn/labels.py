"""The label vocabulary of class and object maps, defined once for both tools.

A class map holds class indices (0 background, 1..20 the VOC classes) and 255 void; an object map holds 0
background, object ids 1..254 and 255 void. An object's class is one rule everywhere (the pipeline's clicks.json and
the evaluator's objects): the most frequent class-map value over the object's pixels other than background and
void, the smallest on a tie, background (0) when there is none.
"""

from __future__ import annotations

import numpy as np

BACKGROUND = 0
VOID = 255
#: Object ids run 1..MAX_OBJECT_ID (255 is void).
MAX_OBJECT_ID = 254
#: PASCAL VOC class names by class index (0 = background).
VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)


def object_ids(object_map: np.ndarray) -> list[int]:
    """The object ids present in an object map, increasing (background and void are not objects)."""
    ids = np.unique(object_map)
    return ids[(ids != BACKGROUND) & (ids != VOID)].tolist()


def object_class(class_values: np.ndarray) -> int:
    """The class of an object from the class-map values under its pixels (the rule in the module docstring)."""
    values = np.asarray(class_values).ravel()
    values = values[(values != BACKGROUND) & (values != VOID)]
    return int(np.bincount(values).argmax()) if values.size else BACKGROUND


def class_names(num_classes: int) -> tuple[str, ...]:
    """VOC names for 21 classes, `class <i>` otherwise."""
    return VOC_CLASSES if num_classes == len(VOC_CLASSES) else tuple(f"class {i}" for i in range(num_classes))
