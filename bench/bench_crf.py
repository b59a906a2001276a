"""Dense CRF (issue 23): what `--crf` and `--refine crf` change and cost, on the synthetic data of `scripts/demo.sh`.

    python -m bench.bench_crf --work bench-crf [--json bench-crf/crf.json]

Writes (or reuses, when present) in WORK: a synthetic VOC-layout dataset (160 train / 40 val images, long side 160,
seed 0), its shards (train 15 pairs, val 1 pair), a resnet18-8s semantic model (9 epochs) and a resnet18-8s
interactive model (3 epochs or 15 minutes), both from scratch on the CPU, then measures:
  1. semantic mIoU and per-class IoU on val without the CRF, with DeepLab's settings and with its bilateral position
     deviation scaled to these images' size (`run_miou`, as `ifcn-eval miou [--crf]`);
  2. seconds per image of `segment` (as `ifcn-eval predict`) with and without the CRF at 500x375 and 2000x1500 (a
     val image enlarged), at the default --max-side 1024 and at --max-side 0 (the CRF at full size);
  3. NoC of the interactive model with --refine none, grabcut and crf (`run_noc`, as `ifcn-eval noc`).
Training runs under `nice -n 10`. Figures print as Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ifcn.trainer.evaluation.checkpoint_eval import run_miou, run_noc
from ifcn.trainer.evaluation.noc import NocSettings
from ifcn.trainer.inference import Predictor
from ifcn.trainer.inference.crf import CrfParams
from ifcn.trainer.inference.images import read_image
from ifcn.trainer.inference.semantic_segmentation import Sizing, segment

TRAIN = ["--arch", "resnet18", "--stride", "8", "--weights", "none", "--batch-size", "16", "--crop", "128",
         "--workers", "1", "--device", "cpu", "--no-progress", "--seed", "0"]
SIZES = ((375, 500), (1500, 2000))
#: The semantic rows: no CRF, DeepLab's settings, and DeepLab's spatial deviations scaled by 160/500 (these images'
#: long side against VOC's, for which DeepLab chose them).
VARIANTS = {"argmax": None, "crf (DeepLab)": CrfParams(),
            "crf (sxy × 0.32)": CrfParams(gaussian_sxy=1.0, bilateral_sxy=67 * 160 / 500)}


def _sh(*command: str | Path) -> None:
    print("$", " ".join(str(c) for c in command), flush=True)
    subprocess.run([str(c) for c in command], check=True)


def prepare(work: Path) -> dict[str, Path]:
    """The dataset, its shards and the two models, made once."""
    voc = work / "data" / "VOCdevkit" / "VOC2012"
    if not voc.is_dir():
        _sh("ifcn-prep", "synth", work / "data", "--train-images", "160", "--val-images", "40", "--long-side", "160")
    for split, pairs in (("train", 15), ("val", 1)):
        if not (work / "shards" / split / "manifest.json").exists():
            _sh("ifcn-prep", "sample", "--voc-root", work / "data", "--split", split, "--pairs", str(pairs), "--out",
                work / "shards" / split, "--no-progress")
    runs = {"semantic": ["--epochs", "9"], "interactive": ["--epochs", "3", "--max-minutes", "15"]}
    models = {}
    for task, budget in runs.items():
        if not (work / task / "last.pt").exists():
            _sh("nice", "-n", "10", "ifcn-train", "--shards", work / "shards" / "train", "--val-shards",
                work / "shards" / "val", "--task", task, *budget, *TRAIN, "--out", work / task)
        # A run stopped by --max-minutes before its first validation has only last.pt.
        models[task] = next(p for p in (work / task / "best.pt", work / task / "last.pt") if p.exists())
    print("models:", {task: str(path) for task, path in models.items()}, flush=True)
    return {"voc": voc, "val": work / "shards" / "val", **models}


def semantic_quality(paths: dict[str, Path]) -> dict[str, Any]:
    """mIoU, pixel accuracy and per-class IoU on val, without and with the CRF."""
    rows = {}
    for name, crf in VARIANTS.items():
        start = time.perf_counter()
        summary, _ = run_miou(paths["semantic"], paths["val"], device="cpu", crf=crf)
        rows[name] = {"miou": summary["miou"], "pixel_accuracy": summary["pixel_accuracy"],
                      "per_class_iou": summary["per_class_iou"], "seconds": time.perf_counter() - start,
                      "crf": summary["crf"]}
    print("\n| class | " + " | ".join(VARIANTS) + " |\n|---|" + "---:|" * len(VARIANTS))
    for cls in rows["argmax"]["per_class_iou"]:
        cells = [rows[name]["per_class_iou"][cls] for name in VARIANTS]
        if any(c is not None for c in cells):
            print(f"| {cls} | " + " | ".join(_pct(c) for c in cells) + " |")
    for key in ("miou", "pixel_accuracy"):
        print(f"| **{key}** | " + " | ".join(_pct(rows[name][key]) for name in VARIANTS) + " |")
    print("| val pass (40 images) | " + " | ".join(f"{rows[name]['seconds']:.1f} s" for name in VARIANTS) + " |")
    return rows


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.2f} %"


def speed(paths: dict[str, Path]) -> list[dict[str, Any]]:
    """Seconds per image of `segment` without and with the CRF (the median of 3 runs at 500x375, one at 2000 px)."""
    predictor = Predictor.from_checkpoint(paths["semantic"], device="cpu")
    key = (paths["voc"] / "ImageSets" / "Segmentation" / "val.txt").read_text().split()[0]
    photo = read_image(paths["voc"] / "JPEGImages" / f"{key}.jpg").rgb
    rows = []
    print("\n| image | --max-side | CRF runs at | argmax s/image | + CRF s/image |\n|---|---:|---|---:|---:|")
    for h, w in SIZES:
        image = cv2.resize(photo, (w, h), interpolation=cv2.INTER_CUBIC)
        for max_side in (1024, 0):
            if not max_side and max(h, w) <= 1024:
                continue  # the same as --max-side 1024
            sizing = Sizing(max_side or None)
            times = {}
            repeats = 3 if h * w < 10**6 else 1
            for name, crf in (("argmax", None), ("crf", CrfParams())):
                segment(predictor, image[:64, :64], sizing, crf)  # warm-up
                runs = []
                for _ in range(repeats):
                    start = time.perf_counter()
                    segment(predictor, image, sizing, crf)
                    runs.append(time.perf_counter() - start)
                times[name] = float(np.median(runs))
            scale = min(1.0, max_side / max(h, w)) if max_side else 1.0
            at = f"{round(w * scale)}×{round(h * scale)}"
            rows.append({"size": f"{w}x{h}", "max_side": max_side, "crf_at": at, **times})
            print(f"| {w}×{h} | {max_side} | {at} | {times['argmax']:.2f} | {times['crf']:.2f} |", flush=True)
    return rows


def noc(paths: dict[str, Path]) -> dict[str, Any]:
    """NoC@85/90, NoF and mIoU@1/5 of the interactive model on val with each refinement."""
    rows = {}
    print("\n| --refine | NoC@85 | NoC@90 | NoF@85 | NoF@90 | mIoU@1 | mIoU@5 | s/click |\n"
          "|---|---:|---:|---:|---:|---:|---:|---:|")
    for refine in ("none", "grabcut", "crf"):
        result = run_noc(paths["interactive"], str(paths["val"]), NocSettings(refine=refine), device="cpu",
                         workers=2)
        (summary,) = result["datasets"].values()
        rows[refine] = {k: summary[k] for k in ("noc", "nof", "miou_curve", "seconds_per_click", "num_objects")}
        noc_t, nof, curve = summary["noc"], summary["nof"], summary["miou_curve"]
        print(f"| {refine} | {noc_t['85']:.2f} | {noc_t['90']:.2f} | {nof['85']} | {nof['90']} | "
              f"{curve[0] * 100:.1f} % | {curve[4] * 100:.1f} % | {summary['seconds_per_click']:.4f} |", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("bench-crf"), help="folder for data, shards and models")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    parser.add_argument("--part", action="append", choices=["quality", "speed", "noc"],
                        help="measure only these (repeatable; default: all)")
    args = parser.parse_args()
    paths = prepare(args.work)
    parts = {"quality": semantic_quality, "speed": speed, "noc": noc}
    figures = {name: parts[name](paths) for name in args.part or parts}
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
