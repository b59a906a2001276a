"""Training-loader throughput per CPU core: our shard stream against a seed-style loader, the whole CPU path (stream
+ collate + network input) before and after issue 14, and the cost of one distance channel.

Run: `python -m bench.bench_loader [--images 60] [--pairs 15] [--crop 384] [--batch-size 24] [--batches 40]
[--shuffle-items 128] [--chunk-items 16] [--maps-only]` from the repository root.

- ours: `TrainStream` in one process (= one DataLoader worker): read the slices of webdataset shards its batch
  groups need (chunks of `--chunk-items` items), check each sample's sha256, decode each image once per slice,
  expand it into its (object, pair) items, shuffle a group's items, scale/flip/crop to `--crop`, collate uint8 crops
  and padded click coordinates. Normalisation and the distance channels are computed on the device afterwards.
  Timed twice: with the per-sample sha256 check (the default) and without it (`--no-sample-checksums`).
- whole CPU path: the same stream, then `batch_input` on the CPU (normalised RGB + the two distance channels), as
  CPU training and CPU evaluation run it; "before" builds the input as the code did before issue 14 (out-of-place
  normalisation, the (B, K, H, W) `dense` distance formulation over every padded slot, concatenation).
- seed-style baseline (as the seed's `voc_with_interactives.py` does, on a VOC-layout folder): per item, read the
  JPEG and the SegmentationObject PNG with PIL, read that pair's positive and negative click-map PNGs (written
  beforehand, one PNG per pair per sign with 1 at the clicks, as the seed's `generate_data_pairs.py` does), turn
  them into distance maps with scipy's EDT, resize everything to the crop, flip, normalise, stack 5 float channels.
- maps: CPU milliseconds per sample per sign of one distance channel at `--crop`² in batches of `--batch-size` with
  10 valid clicks of 16 padded slots (and other click counts), for OpenCV's exact Euclidean transform of the
  rasterised clicks (`DIST_MASK_PRECISE`, clipped and scaled), the formulation before (`dense`) and after (the
  CPU's `per_sample`), with the peak growth of the process's memory during the call.

Both run single-threaded (OpenCV and torch at one thread); figures are samples per second of wall time and per
CPU-second (the latter is robust to other processes sharing the machine), over every batch (the shard checks and
the index are done before timing starts). With `--pairs 1` there is no decode to share among
an image's pairs, which shows the gain that comes from the rest of the design alone. Data: the synthetic VOC set
(VOC-like sizes, long side 500) sampled with `ifcn-prep`'s defaults.
"""


from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from scipy.ndimage import distance_transform_edt

from bench.bench_models import rss_peak
from ifcn.pipeline.click_sampling import ClickConfig
from ifcn.pipeline.orchestrate import SampleJob, run_sample
from ifcn.pipeline.synth import SynthConfig, make_synth_dataset
from ifcn.shards.check import check_shards
from ifcn.shards.manifest import resolve_shards
from ifcn.shards.reader import read_shard
from ifcn.trainer.core.clickmaps import DEFAULT_SPEC, distance_maps
from ifcn.trainer.core.input_spec import IMAGENET_MEAN, IMAGENET_STD
from ifcn.trainer.core.inputs import batch_input
from ifcn.trainer.data import AugmentConfig, TrainStream, make_loader

CPU = torch.device("cpu")
Batch = dict[str, torch.Tensor]


def prepare(work: Path, images: int, pairs: int, workers: int = 1, images_per_shard: int = 16,
            scheduler: str | None = None) -> tuple[Path, Path]:
    """Synthetic VOC root and its shards (webdataset), on a local Dask cluster of `workers` or on `scheduler`."""
    root = make_synth_dataset(work / "synth", SynthConfig(train_images=images, val_images=0, seed=0))
    shards = work / "shards"
    run_sample(SampleJob(voc_root=root, split="train", out=shards, clicks=ClickConfig(pairs=pairs),
                         workers=None if scheduler else workers, images_per_shard=images_per_shard, scheduler=scheduler,
                         progress=False), log=lambda m: None)
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


def our_batches(shards: Path, crop: int, batch: int, batches: int, *, workers: int = 0, shuffle_items: int = 128,
                chunk_items: int = 16, check_digest: bool = True,
                to_input: Callable[[Batch], torch.Tensor] | None = None) -> Iterator[int]:
    """Batch sizes of our loader; with `to_input`, each batch is also turned into the network input on the CPU."""
    infos = check_shards(resolve_shards(shards), "interactive")
    stream = TrainStream(infos, "interactive", AugmentConfig(crop), batch, batches, seed=0, workers=workers,
                         shuffle_items=shuffle_items, chunk_items=chunk_items, check_digest=check_digest)
    for b in make_loader(stream):
        if to_input is not None:
            to_input(b)
        yield len(b["image"])


def input_after(batch: Batch) -> torch.Tensor:
    """The network input as training and evaluation build it (`ifcn.trainer.core.inputs.batch_input`)."""
    return batch_input(batch, CPU)


def input_before(batch: Batch) -> torch.Tensor:
    """The network input as built before issue 14: out-of-place normalisation, `dense` maps, concatenation."""
    images = batch["image"].permute(0, 3, 1, 2)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255.0
    h, w = images.shape[-2:]
    maps = [distance_maps(batch[s], batch[f"{s}_valid"], h, w, formulation="dense") for s in ("pos", "neg")]
    return torch.cat([(images.float() - mean) / std, *maps], dim=1)


def opencv_maps(clicks: torch.Tensor, valid: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """OpenCV's exact Euclidean transform of each sample's rasterised clicks, clipped and scaled: the reference cost."""
    out = torch.empty(len(valid), 1, height, width)
    for i in range(len(valid)):
        free = np.ones((height, width), np.uint8)
        yx = clicks[i][valid[i]].long().numpy()
        free[yx[:, 0], yx[:, 1]] = 0
        dist = cv2.distanceTransform(free, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        np.minimum(dist, DEFAULT_SPEC.clip, out=dist)
        out[i, 0] = torch.from_numpy(dist / DEFAULT_SPEC.clip)
    return out


def map_costs(batch: int, size: int, valid_clicks: int, slots: int, repeats: int = 3,
              seed: int = 0) -> dict[str, tuple[float, float]]:
    """{method: (ms per sample per sign, peak memory growth in MiB)} for one distance channel of a random batch."""
    g = torch.Generator().manual_seed(seed)
    clicks = torch.randint(0, size, (batch, slots, 2), dtype=torch.int32, generator=g)
    valid = torch.zeros(batch, slots, dtype=torch.bool)
    valid[:, :valid_clicks] = True
    methods: dict[str, Callable[[], torch.Tensor]] = {
        "opencv exact EDT": lambda: opencv_maps(clicks, valid, size, size),
        "before (dense)": lambda: distance_maps(clicks, valid, size, size, formulation="dense"),
        "after (per_sample)": lambda: distance_maps(clicks, valid, size, size),
    }
    costs = {}
    for name, fn in methods.items():
        with rss_peak() as growth:  # the warm-up call, watched by the memory sampler (its thread skews timing)
            fn()
            peak = growth()
        times = []
        for _ in range(repeats):  # CPU time at one thread: the cost per core, robust to other processes
            start = time.process_time()
            fn()
            times.append(time.process_time() - start)
        costs[name] = (1000 * statistics.median(times) / batch, peak / 2**20)
    return costs


def print_map_costs(batch: int, size: int) -> None:
    output_mib = batch * size * size * 4 / 2**20
    print(f"one distance channel, {size}x{size}, batch {batch}, one thread (output tensor {output_mib:.0f} MiB):")
    print(f"{'valid/slots':>12}{'method':>22}{'ms/sample/sign':>16}{'vs EDT':>8}{'peak MiB':>10}")
    for valid_clicks, slots in ((10, 16), (1, 8), (24, 24), (48, 48), (100, 104)):
        costs = map_costs(batch, size, valid_clicks, slots)
        edt_ms = costs["opencv exact EDT"][0]
        for name, (ms, mib) in costs.items():
            print(f"{valid_clicks:>5}/{slots:<6}{name:>22}{ms:>16.3f}{ms / edt_ms:>7.2f}x{mib:>10.0f}")




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=60)
    parser.add_argument("--pairs", type=int, default=15)
    parser.add_argument("--crop", type=int, default=384)
    parser.add_argument("--batch-size", type=int, default=24)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--shuffle-items", type=int, default=128)
    parser.add_argument("--chunk-items", type=int, default=16)
    parser.add_argument("--maps-only", action="store_true", help="only the distance-channel costs")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    print_map_costs(args.batch_size, args.crop)
    if args.maps_only:
        return
    with tempfile.TemporaryDirectory() as tmp:
        root, shards = prepare(Path(tmp), args.images, args.pairs)
        items = write_click_maps(shards, Path(tmp) / "click_maps")
        print(f"{args.images} images, {len(items)} (object, pair) items; crop {args.crop}, batch {args.batch_size}, "
              f"{args.batches} batches each")
        loader = (shards, args.crop, args.batch_size, args.batches)
        options = {"shuffle_items": args.shuffle_items, "chunk_items": args.chunk_items}
        rates = {
            "ours, loader only (stream + collate)": rate(our_batches(*loader, **options)),
            "ours, loader only, no sample sha256": rate(our_batches(*loader, **options, check_digest=False)),
            "ours, whole CPU path, after": rate(our_batches(*loader, **options, to_input=input_after)),
            "ours, whole CPU path, before": rate(our_batches(*loader, **options, to_input=input_before)),
            "seed-style (whole CPU path)": rate(seed_batches(root, items, args.crop, args.batch_size, args.batches)),
        }
    for name, (wall, per_cpu) in rates.items():
        print(f"{name:<40}: {wall:7.1f} samples/s wall, {per_cpu:7.1f} samples per CPU-second")
    checked = rates["ours, loader only (stream + collate)"][1]
    unchecked = rates["ours, loader only, no sample sha256"][1]
    print(f"cost of the default per-sample sha256 check: {100 * (1 - checked / unchecked):.1f} % of the loader's "
          "samples per CPU-second")
    after, before = rates["ours, whole CPU path, after"][1], rates["ours, whole CPU path, before"][1]
    seed = rates["seed-style (whole CPU path)"][1]
    print(f"whole CPU path per core: after/before {after / before:.1f}x, after/seed-style {after / seed:.1f}x")


if __name__ == "__main__":
    main()
