"""The stable split of a DAVIS-layout folder of real photos (COCO_MVal: `img/*.jpg`, `gt/*.png`) into 80 % training
and 20 % held-out photos, by a hash of each file name (issue 19), so that the split never depends on the order, the
count or the machine: adding or removing photos moves no other photo.

Rule: a photo whose stem `s` gives `int(sha256(s as UTF-8).hexdigest()[:8], 16) % 100 < 80` is a training photo,
any other is held out. The two halves are written as DAVIS-layout folders `OUT/train/` and `OUT/held/` of hard links
(no copy, the dataset itself is only read) under the photos' original names, spaces included (`ifcn.keys` turns them
into shard keys):

    python -m bench.real_photos /work/data/datasets/COCO_MVal /work/data/realphoto/split
    ifcn-prep sample --source davis --root /work/data/realphoto/split/train --pairs 15 --out shards/train
    ifcn-prep sample --source davis --root /work/data/realphoto/split/held --pairs 1 --out shards/held
"""

from __future__ import annotations

import argparse
import hashlib
import os
from pathlib import Path

#: The share of photos (in percent of the hash's residues) that train.
TRAIN_PERCENT = 80
SPLITS = ("train", "held")
IMAGES, MASKS = "img", "gt"


def split_of(stem: str) -> str:
    """`train` or `held`, from the photo's file stem alone."""
    bucket = int(hashlib.sha256(stem.encode("utf-8")).hexdigest()[:8], 16) % 100
    return "train" if bucket < TRAIN_PERCENT else "held"


def write_split(root: Path, out: Path) -> dict[str, int]:
    """Hard-link every photo of `root/img` and its mask `root/gt/<stem>.png` into `out/<split>/img` and `gt`; the
    number of photos per split. `out` must not hold a split yet; a photo without its mask stops before any link."""
    photos = sorted(p for p in (root / IMAGES).iterdir() if p.is_file())
    missing = [p.name for p in photos if not (root / MASKS / f"{p.stem}.png").is_file()]
    if missing:
        raise FileNotFoundError(f"{root / MASKS}: no mask for {len(missing)} photo(s), e.g. {missing[0]!r}")
    for split in SPLITS:
        for sub in (IMAGES, MASKS):
            (out / split / sub).mkdir(parents=True)  # FileExistsError: never mixes two splits in one folder
    counts = dict.fromkeys(SPLITS, 0)
    for photo in photos:
        split = split_of(photo.stem)
        os.link(photo, out / split / IMAGES / photo.name)
        os.link(root / MASKS / f"{photo.stem}.png", out / split / MASKS / f"{photo.stem}.png")
        counts[split] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path, help="the DAVIS-layout folder (img/, gt/)")
    parser.add_argument("out", type=Path, help="a new folder for train/ and held/")
    args = parser.parse_args()
    counts = write_split(args.root, args.out)
    print(f"{args.out}: " + ", ".join(f"{split} {n} photos" for split, n in counts.items()))


if __name__ == "__main__":
    main()
