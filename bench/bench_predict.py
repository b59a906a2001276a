"""Semantic prediction of large images (`ifcn-eval predict`): speed and peak memory, and the quality of each sizing.

Speed and memory (untrained FCN-8s, weights none: the speed of a trained one), each case in a fresh process so that
its peak memory is its own:
    python bench/bench_predict.py speed [--device cpu] [--arch resnet18 --arch vgg16] [--size 500x375
        --size 5472x3648] [--strategy whole --strategy max-side:1024 --strategy tiles:512:64] [--json out.json]
  prints seconds per image, the process's peak resident memory (CPU; weights and runtime included) or peak CUDA
  memory, and the growth of the peak during the prediction. `whole` at 5472x3648 needs many GB (vgg16: more than
  a 24 GB machine may have free): it runs only when asked for with --strategy.
Quality (a trained semantic checkpoint on a VOC-layout split, e.g. the synthetic one of scripts/demo.sh):
    python bench/bench_predict.py quality --checkpoint runs/sem/best.pt --voc-root demo/data [--split val]
        [--upscale 1 --upscale 4] [--strategy ...]
  prints the mIoU of each sizing with the images (and their class maps) enlarged by each --upscale factor, which
  imitates photos larger than the training images.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from ifcn.trainer.core.device import resolve_device
from ifcn.trainer.core.metrics import ConfusionMatrix
from ifcn.trainer.inference import Predictor
from ifcn.trainer.inference.images import read_image
from ifcn.trainer.inference.semantic_segmentation import Sizing, segment
from ifcn.trainer.models import ModelConfig, build_model

DEFAULT_STRATEGIES = ("whole", "max-side:1024", "tiles:512:64")


def parse_strategy(text: str) -> Sizing:
    """whole | max-side:N | tiles:T:M | max-side:N+tiles:T:M"""
    max_side = tile = None
    overlap = 64
    for part in text.split("+"):
        name, *values = part.split(":")
        if name == "max-side":
            max_side = int(values[0])
        elif name == "tiles":
            tile, overlap = int(values[0]), int(values[1])
        elif name != "whole":
            raise SystemExit(f"unknown strategy {text!r}: use whole, max-side:N, tiles:T:M or max-side:N+tiles:T:M")
    return Sizing(max_side, tile, overlap)


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB


def one(args: argparse.Namespace) -> None:
    """Child process: one (arch, size, strategy) case; prints its figures as JSON."""
    device = resolve_device(args.device)
    width, height = (int(v) for v in args.size.lower().split("x"))
    model = build_model(ModelConfig(backbone=args.arch, stride=8, in_channels=3, num_classes=21, weights="none"))
    predictor = Predictor(model, "semantic", device)
    sizing = parse_strategy(args.strategy)
    image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    segment(predictor, image[:64, :64], sizing)  # warm-up
    before = peak_gib()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    labels = segment(predictor, image, sizing)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    assert labels.shape == (height, width)
    figures = {"arch": f"{args.arch}-8s", "size": args.size, "strategy": args.strategy, "device": str(device),
               "seconds": seconds, "peak_rss_gib": peak_gib(), "peak_growth_gib": peak_gib() - before,
               "torch_threads": torch.get_num_threads()}
    if device.type == "cuda":
        figures["peak_cuda_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    print(json.dumps(figures))


def speed(args: argparse.Namespace) -> None:
    rows = []
    for arch in args.arch or ["resnet18", "vgg16"]:
        for size in args.size or ["500x375", "5472x3648"]:
            for strategy in args.strategy or DEFAULT_STRATEGIES:
                if strategy == "whole" and size == "5472x3648" and not args.strategy:
                    continue  # several GB per pass: only on request
                command = [sys.executable, __file__, "_one", "--arch", arch, "--size", size, "--strategy", strategy,
                           "--device", args.device]
                done = subprocess.run(command, capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    print(f"{arch} {size} {strategy}: failed ({done.stderr.strip().splitlines()[-1:]})")
                    continue
                row = json.loads(done.stdout.strip().splitlines()[-1])
                rows.append(row)
                memory = (f"peak CUDA {row['peak_cuda_gib']:.2f} GiB" if "peak_cuda_gib" in row else
                          f"peak RSS {row['peak_rss_gib']:.2f} GiB (+{row['peak_growth_gib']:.2f} during the image)")
                print(f"{row['arch']:<13} {size:>10} {strategy:<16} {row['seconds']:8.2f} s  {memory}", flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


def quality(args: argparse.Namespace) -> None:
    root = Path(args.voc_root)
    for candidate in (root, root / "VOC2012", root / "VOCdevkit" / "VOC2012"):
        if (candidate / "ImageSets").is_dir():
            root = candidate
    ids = (root / "ImageSets" / "Segmentation" / f"{args.split}.txt").read_text().split()
    predictor = Predictor.from_checkpoint(args.checkpoint, device=args.device)
    strategies = args.strategy or DEFAULT_STRATEGIES
    print(f"{len(ids)} {args.split} images; mIoU by sizing (rows) and upscale factor (columns)")
    results = {}
    for strategy in strategies:
        sizing = parse_strategy(strategy)
        cells = []
        for factor in args.upscale or [1, 4]:
            matrix = ConfusionMatrix(predictor.num_classes, "cpu")
            start = time.perf_counter()
            for key in ids:
                image = read_image(root / "JPEGImages" / f"{key}.jpg").rgb
                target = np.asarray(Image.open(root / "SegmentationClass" / f"{key}.png"))
                if factor != 1:
                    size = (image.shape[1] * factor, image.shape[0] * factor)
                    image = cv2.resize(image, size, interpolation=cv2.INTER_CUBIC)
                    target = cv2.resize(target, size, interpolation=cv2.INTER_NEAREST)
                labels = segment(predictor, image, sizing)
                matrix.update(torch.from_numpy(labels).long(), torch.tensor(target).long())
            miou = matrix.scores().miou
            results[f"{strategy} x{factor}"] = {"miou": miou, "seconds": time.perf_counter() - start}
            cells.append(f"x{factor}: {miou * 100:6.2f}% ({time.perf_counter() - start:6.1f} s)")
        print(f"{strategy:<24} " + "   ".join(cells), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    for name in ("speed", "quality", "_one"):
        p = sub.add_parser(name)
        p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="cpu")
        p.add_argument("--strategy", action="append", help="whole | max-side:N | tiles:T:M (repeatable)")
        p.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
        if name == "quality":
            p.add_argument("--checkpoint", type=Path, required=True)
            p.add_argument("--voc-root", type=Path, required=True)
            p.add_argument("--split", default="val")
            p.add_argument("--upscale", type=int, action="append")
        else:
            p.add_argument("--arch", action="append" if name == "speed" else "store", default=None)
            p.add_argument("--size", action="append" if name == "speed" else "store", default=None)
    args = parser.parse_args()
    if args.mode == "_one":
        args.strategy = args.strategy[0]
        one(args)
    else:
        {"speed": speed, "quality": quality}[args.mode](args)


if __name__ == "__main__":
    main()
