"""Training-loader throughput per CPU core: our shard stream against a seed-style loader.

Run: `python bench/bench_loader.py [--images 60] [--pairs 15] [--crop 384] [--batch-size 8] [--batches 100]
[--shuffle-items 128] [--chunk-items 16]`.

- ours: `TrainStream` in one process (= one DataLoader worker): read the slices of webdataset shards its batch
  groups need (chunks of `--chunk-items` items), check each sample's sha256, decode each image once per slice,
  expand it into its (object, pair) items, shuffle a group's items, scale/flip/crop to `--crop`, collate uint8 crops
  and padded click coordinates. Normalisation and the distance channels are computed on the device afterwards.
  Timed twice: with the per-sample sha256 check (the default) and without it (`--no-sample-checksums`).
- seed-style baseline (as the seed's `voc_with_interactives.py` does, on a VOC-layout folder): per item, read the
  JPEG and the SegmentationObject PNG with PIL, read that pair's positive and negative click-map PNGs (written
  beforehand, one PNG per pair per sign with 1 at the clicks, as the seed's `generate_data_pairs.py` does), turn
  them into distance maps with scipy's EDT, resize everything to the crop, flip, normalise, stack 5 float channels.

Both run single-threaded (OpenCV and torch at one thread); figures are samples per second of wall time and per
CPU-second (the latter is robust to other processes sharing the machine), over every batch (the shard checks and
the index are done before timing starts). With `--pairs 1` there is no decode to share among
an image's pairs, which shows the gain that comes from the rest of the design alone. Data: the synthetic VOC set
(VOC-like sizes, long side 500) sampled with `ifcn-prep`'s defaults.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from scipy.ndimage import distance_transform_edt

from ifcn.pipeline.clicks import ClickConfig
from ifcn.pipeline.orchestrate import SampleJob, run_sample
from ifcn.pipeline.synth import SynthConfig, make_synth_dataset
from ifcn.shards.check import check_shards
from ifcn.shards.manifest import resolve_shards
from ifcn.shards.reader import read_shard
from ifcn.trainer.data import AugmentConfig, TrainStream, make_loader
from ifcn.trainer.inputs import IMAGENET_MEAN, IMAGENET_STD


def prepare(work: Path, images: int, pairs: int) -> tuple[Path, Path]:
    """Synthetic VOC root and its shards (webdataset)."""
    root = make_synth_dataset(work / "synth", SynthConfig(train_images=images, val_images=0, seed=0))
    shards = work / "shards"
    run_sample(SampleJob(voc_root=root, split="train", out=shards, clicks=ClickConfig(pairs=pairs), workers=1,
                         images_per_shard=16, progress=False), log=lambda m: None)
    return root, shards


def write_click_maps(shards: Path, folder: Path) -> list[tuple[str, int, Path, Path]]:
    """The seed's per-pair click-map PNGs (1 at each click): one (key, object id, pos png, neg png) per item."""
    folder.mkdir(parents=True, exist_ok=True)
    items = []
    for location in resolve_shards(shards).locations:
        for sample in read_shard(location):
            for obj in sample.clicks.objects:
                for k, pair in enumerate(obj.pairs):
                    names = []
                    for sign, clicks in (("pos", pair.pos), ("neg", pair.neg)):
                        m = np.zeros((sample.clicks.height, sample.clicks.width), np.uint8)
                        for y, x in clicks:
                            m[y, x] = 1
                        name = folder / f"{sample.key}_{obj.id}_{k}_{sign}.png"
                        Image.fromarray(m).save(name)
                        names.append(name)
                    items.append((sample.key, obj.id, names[0], names[1]))
    return items


def seed_style_item(root: Path, key: str, object_id: int, pos_png: Path, neg_png: Path, crop: int,
                    rng: np.random.Generator) -> torch.Tensor:
    """One 5-channel float input (normalised RGB + two distance maps) built entirely on the CPU."""
    image = np.asarray(Image.open(root / "JPEGImages" / f"{key}.jpg").convert("RGB"))
    objects = np.asarray(Image.open(root / "SegmentationObject" / f"{key}.png"))
    target = (objects == object_id).astype(np.uint8)
    maps = []
    for png in (pos_png, neg_png):
        clicks = np.asarray(Image.open(png))
        dist = distance_transform_edt(clicks == 0) if clicks.any() else np.full(clicks.shape, 255.0)
        maps.append(np.minimum(dist, 255.0).astype(np.float32))
    size = (crop, crop)
    image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255.0
    target = cv2.resize(target, size, interpolation=cv2.INTER_NEAREST)
    maps = [cv2.resize(m, size, interpolation=cv2.INTER_LINEAR) / 255.0 for m in maps]
    if rng.random() < 0.5:
        image, target, maps = image[:, ::-1], target[:, ::-1], [m[:, ::-1] for m in maps]
    rgb = (image - np.array(IMAGENET_MEAN, np.float32)) / np.array(IMAGENET_STD, np.float32)
    x = np.concatenate([rgb.transpose(2, 0, 1), np.stack(maps)], axis=0)
    return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(target))


def rate(batches: Iterator[int]) -> tuple[float, float]:
    """Samples per wall second and per CPU-second over all batches (our first batch group is built whole before
    its first batch comes out, so no batch is a warm-up to leave out)."""
    start, cpu = time.perf_counter(), time.process_time()
    count = sum(batches)
    return count / (time.perf_counter() - start), count / (time.process_time() - cpu)


def seed_batches(root: Path, items: list, crop: int, batch: int, batches: int) -> Iterator[int]:
    rng = np.random.default_rng(0)
    order = rng.permutation(len(items))
    for b in range(batches):
        chosen = [items[order[(b * batch + i) % len(items)]] for i in range(batch)]
        pairs = [seed_style_item(root, *it, crop, rng) for it in chosen]
        yield len(torch.stack([p[0] for p in pairs]))


def our_batches(shards: Path, crop: int, batch: int, batches: int, shuffle_items: int, chunk_items: int,
                check_digest: bool) -> Iterator[int]:
    infos = check_shards(resolve_shards(shards), "interactive")
    stream = TrainStream(infos, "interactive", AugmentConfig(crop), batch, batches, seed=0,
                         shuffle_items=shuffle_items, chunk_items=chunk_items, check_digest=check_digest)
    return (len(b["image"]) for b in make_loader(stream))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=60)
    parser.add_argument("--pairs", type=int, default=15)
    parser.add_argument("--crop", type=int, default=384)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--shuffle-items", type=int, default=128)
    parser.add_argument("--chunk-items", type=int, default=16)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root, shards = prepare(Path(tmp), args.images, args.pairs)
        items = write_click_maps(shards, Path(tmp) / "click_maps")
        print(f"{args.images} images, {len(items)} (object, pair) items; crop {args.crop}, batch {args.batch_size}, "
              f"{args.batches} batches each")
        checked, unchecked = (rate(our_batches(shards, args.crop, args.batch_size, args.batches,
                                                      args.shuffle_items, args.chunk_items, check))
                              for check in (True, False))
        seed = rate(seed_batches(root, items, args.crop, args.batch_size, args.batches))
    for name, (wall, per_cpu) in (("ours", checked), ("ours, no sample sha256", unchecked), ("seed-style", seed)):
        print(f"{name:22}: {wall:7.1f} samples/s wall, {per_cpu:7.1f} samples per CPU-second")
    print(f"cost of the default per-sample sha256 check: {100 * (1 - checked[1] / unchecked[1]):.1f} % of the "
          "samples per CPU-second")
    print(f"speed-up per core: {checked[1] / seed[1]:.1f}x (target ≥ 3x)")


if __name__ == "__main__":
    main()
