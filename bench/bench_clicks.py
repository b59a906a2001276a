"""Click sampling speed alone (no I/O): milliseconds per object on VOC-like 375×500 object maps.

Run: `python bench/bench_clicks.py [--images 300] [--pairs 15]`. Objects are random ellipses (2–3 per image, from
small to most of the image) with a 5-pixel void band around them, as in VOC's SegmentationObject masks.
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np

from ifcn.pipeline.click_sampling import ClickConfig, image_rng, sample_image_clicks


def voc_like_object_map(rng: np.random.Generator, height: int = 375, width: int = 500) -> np.ndarray:
    """2–3 overlapping ellipses with ids 1.., a 5-px void (255) band along every object boundary."""
    obj = np.zeros((height, width), np.uint8)
    for object_id in range(1, int(rng.integers(2, 4)) + 1):
        center = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        axes = (int(rng.integers(10, 200)), int(rng.integers(10, 160)))
        cv2.ellipse(obj, center, axes, float(rng.uniform(0, 180)), 0, 360, object_id, thickness=-1)
    edges = np.zeros_like(obj)
    edges[:, 1:] |= obj[:, 1:] != obj[:, :-1]
    edges[1:, :] |= obj[1:, :] != obj[:-1, :]
    void = cv2.dilate(edges, np.ones((5, 5), np.uint8)).astype(bool)
    obj[void] = 255
    return obj


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--pairs", type=int, default=15)
    args = parser.parse_args()
    maps = [voc_like_object_map(np.random.default_rng(i)) for i in range(args.images)]
    config = ClickConfig(pairs=args.pairs)
    start, cpu_start = time.perf_counter(), time.process_time()
    kept = skipped = 0
    for i, obj in enumerate(maps):
        clicks = sample_image_clicks(f"img{i}", obj, obj, config, image_rng(0, f"img{i}"))
        kept += len(clicks.objects)
        skipped += len(clicks.skipped)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    objects = max(kept + skipped, 1)
    print(f"{args.images} images, {kept} objects sampled ({args.pairs} pairs each), {skipped} skipped: "
          f"wall {seconds:.2f} s ({1000 * seconds / objects:.2f} ms/object), "
          f"CPU {cpu:.2f} s ({1000 * cpu / args.images:.2f} ms/image, {1000 * cpu / objects:.2f} ms/object)")


if __name__ == "__main__":
    main()
