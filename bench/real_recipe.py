"""The real-photo recipe (issue 19) in one place: its training flags, read by the CPU study's table, `bench/gpu.sh`'s
`real` step and the README, and a compact copy of the real-photo shards that travels to a GPU machine.

The device tool carries at most 64 MiB of ignored files; COCO_MVal's split shards take 134 MB. `pack` writes the
same split with every photo and mask resized to a long side of 320 px (masks nearest-neighbour), sampled like the
study's shards (train: 15 pairs per object, held: 1), about 20 MiB:

    python -m bench.real_recipe pack /work/data/realphoto/split .real-photos   # split = train/ + held/ (DAVIS layout)
    # then, with a GPU lent: the device tool's run(carry=[".real-photos", ".wheels"], command="bash bench/gpu.sh")
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

import cv2

#: The documented real-photo recipe: flags beyond the defaults (the recipe study's winners combined, bench/RESULTS.md),
#: documented with `--schedule poly --epochs E`, E sized to the time budget (the study: 2 epochs, 58 CPU minutes);
#: `bench/gpu.sh`'s few minutes on a GPU keep a constant rate, their epoch count not being known beforehand.
RECIPE = ("--crop", "192", "--batch-size", "16", "--iterative", "3", "--click-encoding", "disk")
#: Where `bench/gpu.sh` looks for packed real-photo shards (an ignored folder), unless IFCN_REAL_SHARDS says.
DEFAULT_PACKED = Path(".real-photos")
PARTS = (("train", 15), ("held", 1))


def shrink(src: Path, dst: Path, long_side: int) -> int:
    """Copy a DAVIS-layout folder (img/*.jpg, gt/*.png) with every photo and mask at most `long_side` px long."""
    count = 0
    for image_path in sorted((src / "img").glob("*.jpg")):
        mask_path = src / "gt" / f"{image_path.stem}.png"
        image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
        mask = cv2.imread(str(mask_path), cv2.IMREAD_UNCHANGED)
        if image is None or mask is None:
            raise SystemExit(f"cannot read {image_path} or {mask_path}: is {src} a DAVIS-layout folder?")
        h, w = image.shape[:2]
        scale = min(1.0, long_side / max(h, w))
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        for sub, name, array, interpolation in (("img", image_path.name, image, cv2.INTER_AREA),
                                                ("gt", mask_path.name, mask, cv2.INTER_NEAREST)):
            (dst / sub).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(dst / sub / name), cv2.resize(array, size, interpolation=interpolation),
                        [cv2.IMWRITE_JPEG_QUALITY, 90])
        count += 1
    return count


def pack(split: Path, out: Path, long_side: int = 320) -> None:
    """Shards of `split`'s train/ and held/ photos at `long_side` under out/train and out/held."""
    for part, pairs in PARTS:
        with tempfile.TemporaryDirectory() as tmp:
            n = shrink(split / part, Path(tmp), long_side)
            subprocess.run(["ifcn-prep", "sample", "--source", "davis", "--root", tmp, "--pairs", str(pairs),
                            "--out", str(out / part), "--no-progress"], check=True)
        print(f"{part}: {n} photos at long side {long_side} -> {out / part}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="compact real-photo shards for a GPU machine")
    p.add_argument("split", type=Path, help="folder with train/ and held/ (DAVIS layout: img/, gt/)")
    p.add_argument("out", type=Path)
    p.add_argument("--long-side", type=int, default=320)
    args = parser.parse_args()
    pack(args.split, args.out, args.long_side)


if __name__ == "__main__":
    main()
