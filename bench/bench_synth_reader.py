"""Speed of the synthetic dataset generator and of the checked VOC reader (prints figures; not a test).

Usage: python bench/bench_synth_reader.py [--train-images 1464] [--long-side 500] [--out DIR]
The reader must stay well under ~8 ms per 500×375 image: it runs for every image of every `ifcn-prep sample`.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from ifcn.pipeline.sources.voc import check_files, find_voc_root, load_voc_image, read_split
from ifcn.pipeline.synth import SynthConfig, make_synth_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-images", type=int, default=1464)
    parser.add_argument("--long-side", type=int, default=500)
    parser.add_argument("--out", type=Path, default=None, help="folder to write into (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        start = time.perf_counter()
        root = make_synth_dataset(out, SynthConfig(train_images=args.train_images, val_images=0,
                                                   long_side=args.long_side))
        seconds = time.perf_counter() - start
        megabytes = sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / 1e6
        print(f"synth: {args.train_images} images, long side {args.long_side}: {seconds:.1f} s "
              f"({1000 * seconds / args.train_images:.1f} ms/image), {megabytes:.1f} MB")

        start = time.perf_counter()
        ids = read_split(find_voc_root(out), "train")
        errors = check_files(root, ids)
        print(f"read_split + check_files: {1000 * (time.perf_counter() - start):.1f} ms for {len(ids)} ids, "
              f"{len(errors)} errors")
        times, objects = [], 0
        for key in ids:
            start = time.perf_counter()
            image = load_voc_image(root, key)
            times.append(time.perf_counter() - start)
            objects += len(set(np.unique(image.object_map).tolist()) - {0, 255})
        ms = 1000 * np.array(times)
        print(f"load_voc_image: mean {ms.mean():.2f} ms, median {np.median(ms):.2f} ms, "
              f"p95 {np.percentile(ms, 95):.2f} ms per image; total {ms.sum() / 1000:.1f} s; "
              f"{objects} objects ({objects / len(ids):.2f} per image)")


if __name__ == "__main__":
    main()
