"""Tiny evaluation inputs made by hand: val shards with a manifest, and untrained checkpoints of both tasks."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from ifcn.pipeline.click_sampling import ClickConfig, image_rng, sample_image_clicks
from ifcn.shards.formats import get_format
from ifcn.shards.manifest import SCHEMA_VERSION, Manifest, ShardEntry, Source, Totals, write_manifest
from ifcn.shards.records import Sample, encode_mask
from ifcn.trainer.core.checkpoint import save_checkpoint
from ifcn.trainer.evaluation.objects import EvalObject, eval_objects_of_image
from ifcn.trainer.models import ModelConfig, build_model

CLICKS = ClickConfig(pairs=1, min_area=30, d=12.0)
#: (height, width) of each image; two sizes so batching by size is exercised.
SIZES = ((48, 64), (64, 48), (48, 64), (40, 56))


def _scene(rng: np.random.Generator, key: str, shape: tuple[int, int]) -> Sample:
    """Two ellipses of VOC classes 1..20 with 1-px void bands, on a textured background; a real JPEG."""
    h, w = shape
    object_map = np.zeros(shape, np.uint8)
    class_map = np.zeros(shape, np.uint8)
    image = rng.integers(60, 120, (h, w, 3)).astype(np.uint8)
    for object_id in (1, 2):
        layer = np.zeros(shape, np.uint8)
        centre = (int(rng.integers(w // 4, 3 * w // 4)), int(rng.integers(h // 4, 3 * h // 4)))
        cv2.ellipse(layer, centre, (int(rng.integers(6, w // 3)), int(rng.integers(6, h // 3))),
                    float(rng.uniform(0, 180)), 0, 360, 1, -1)
        inside = layer.astype(bool)
        band = cv2.dilate(layer, np.ones((3, 3), np.uint8)).astype(bool) & ~inside
        cls = int(rng.integers(1, 21))
        object_map[band], class_map[band] = 255, 255
        object_map[inside], class_map[inside] = object_id, cls
        image[inside] = rng.integers(0, 256, 3)
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    clicks = sample_image_clicks(key, object_map, class_map, CLICKS, image_rng(0, key))
    return Sample(key, jpeg.tobytes(), encode_mask(class_map), encode_mask(object_map), clicks)


def make_val_shards(folder: Path, images_per_shard: int = 2) -> Path:
    """Write webdataset val shards of `SIZES` scenes plus manifest.json into `folder`; return the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2024)
    samples = [_scene(rng, f"2099_{i:06d}", shape) for i, shape in enumerate(SIZES)]
    fmt = get_format("webdataset")
    entries = []
    for n, start in enumerate(range(0, len(samples), images_per_shard)):
        part = samples[start:start + images_per_shard]
        path = folder / f"val-{n:06d}.tar"
        fmt.write(path, part)
        data = path.read_bytes()
        entries.append(ShardEntry(path.name, "webdataset", len(part), sum(len(s.clicks.objects) for s in part),
                                  sum(s.clicks.num_pairs for s in part), len(data), hashlib.sha256(data).hexdigest(),
                                  part[0].key, part[-1].key))
    totals = Totals(len(samples), sum(e.objects for e in entries), sum(e.pairs for e in entries), {}, ())
    params = {"clicks": CLICKS.to_dict(), "seed": 0, "format": "webdataset", "images_per_shard": images_per_shard}
    source = Source(str(folder), "val", hashlib.sha256(b"test").hexdigest(), len(samples))
    write_manifest(folder, Manifest(SCHEMA_VERSION, "test", "webdataset", params, source, tuple(entries), totals))
    return folder


def make_checkpoint(path: Path, task: str) -> Path:
    """An untrained resnet18-8s checkpoint for `task` (interactive: 5 channels, 1 logit; semantic: RGB, 21)."""
    interactive = task == "interactive"
    config = ModelConfig(backbone="resnet18", stride=8, in_channels=5 if interactive else 3,
                         num_classes=1 if interactive else 21, weights="none", first_layer_init="mean")
    save_checkpoint(path, {"model_config": config.to_dict(), "task": task, "model": build_model(config).state_dict(),
                           "manifest_id": "untrained"})
    return path


def random_scene(rng: np.random.Generator, shape: tuple[int, int], n: int) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping ellipses with void bands, and a noisy image."""
    object_map = np.zeros(shape, np.uint8)
    for i in range(1, n + 1):
        cy, cx = rng.integers(0, shape[0]), rng.integers(0, shape[1])
        axes = (int(rng.integers(4, shape[1] // 3)), int(rng.integers(4, shape[0] // 3)))
        layer = np.zeros(shape, np.uint8)
        cv2.ellipse(layer, (int(cx), int(cy)), axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        band = cv2.dilate(layer, np.ones((3, 3), np.uint8)).astype(bool) & ~layer.astype(bool)
        object_map[band] = 255
        object_map[layer.astype(bool)] = i
    image = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    return object_map, image


def scene_objects(object_maps: Sequence[np.ndarray], images: Sequence[np.ndarray] | None = None,
                  min_area: int = 0) -> tuple[list[EvalObject], Counter]:
    """The evaluation objects of hand-made object maps (class map = object map; black images unless given)."""
    skipped: Counter = Counter()
    objects: list[EvalObject] = []
    for i, object_map in enumerate(object_maps):
        image = images[i] if images is not None else np.zeros((*object_map.shape, 3), np.uint8)
        objects += eval_objects_of_image(f"img{i}", image, object_map, object_map.copy(), min_area, skipped,
                                         start=len(objects))
    return objects, skipped
