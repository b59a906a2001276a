"""Latency per click with and without zoom-in inference (issue 19 item 4, issue 20 item 4) on the CPU.

A synthetic photo (an ellipse on a textured background) of each size; a ResNet-18 FCN-8s interactive network
(untrained unless `--checkpoint`: latency does not depend on the weights); 10 clicks on the object, each timed
through `Predictor.predict` with the previous probabilities, as the demo calls it. Without zoom every click is a
whole-image pass at full size (only `--plain-clicks` of them on large photos: each takes seconds); with zoom the
first click is a whole-image pass at `--whole-side` and the later ones 400-px views.

    python -m bench.bench_zoom --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from ifcn.trainer.inference import Predictor
from ifcn.trainer.inference.zoom import ZoomSettings
from ifcn.trainer.models import ModelConfig, build_model


def photo(height: int, width: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(image, object mask): a textured background with one ellipse a third of the photo wide."""
    image = rng.integers(0, 80, (height, width, 3), dtype=np.uint8)
    mask = np.zeros((height, width), np.uint8)
    cv2.ellipse(mask, (width // 2, height // 2), (width // 6, height // 5), 20.0, 0, 360, 1, -1)
    image[mask.astype(bool)] += 120
    return image, mask.astype(bool)


def click_path(mask: np.ndarray, n: int, rng: np.random.Generator) -> list[tuple[int, int, bool]]:
    """`n` clicks: the object's centre, then random points inside (positive) and outside (negative) it."""
    ys, xs = np.nonzero(mask)
    clicks = [(int(ys.mean()), int(xs.mean()), True)]
    while len(clicks) < n:
        y, x = int(rng.integers(0, mask.shape[0])), int(rng.integers(0, mask.shape[1]))
        clicks.append((y, x, bool(mask[y, x])))
    return clicks


def session_ms(predictor: Predictor, image: np.ndarray, clicks: list[tuple[int, int, bool]],
               zoom: ZoomSettings | None) -> list[float]:
    """Milliseconds of each click of one session (the previous probabilities fed back, as the demo does)."""
    times, prev = [], None
    for k in range(1, len(clicks) + 1):
        start = time.perf_counter()
        prev = predictor.predict(image, clicks[:k], prev=prev if zoom else None, zoom=zoom)
        times.append((time.perf_counter() - start) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--clicks", type=int, default=10)
    parser.add_argument("--plain-clicks", type=int, default=2, help="clicks timed without zoom on large photos")
    parser.add_argument("--target", type=int, default=400)
    parser.add_argument("--whole-side", type=int, default=800)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.checkpoint:
        predictor = Predictor.from_checkpoint(args.checkpoint, device="cpu")
    else:
        predictor = Predictor(build_model(ModelConfig(backbone="resnet18", stride=8, in_channels=5,
                                                      num_classes=1)).eval(), "interactive", "cpu")
    zoom = ZoomSettings(target=args.target, whole_side=args.whole_side)
    rng = np.random.default_rng(0)
    print(f"| photo | mode | clicks timed | first click ms | later clicks p50 ms | later p95 ms |  ({args.threads} "
          f"threads, {torch.__version__})")
    print("|---|---|---:|---:|---:|---:|")
    for h, w in ((375, 500), (3000, 4000)):
        image, mask = photo(h, w, rng)
        clicks = click_path(mask, args.clicks, rng)
        predictor.predict(image[:64, :64], [(5, 5, True)])  # warm-up
        plain_n = args.clicks if h * w <= 1_000_000 else args.plain_clicks
        for mode, settings, n in (("whole image", None, plain_n), (f"zoom {args.target}/{args.whole_side}", zoom,
                                                                    args.clicks)):
            ms = session_ms(predictor, image, clicks[:n], settings)
            later = ms[1:] or ms
            p95 = sorted(later)[max(0, round(0.95 * len(later)) - 1)]
            print(f"| {w}×{h} | {mode} | {n} | {ms[0]:.0f} | {statistics.median(later):.0f} | {p95:.0f} |",
                  flush=True)


if __name__ == "__main__":
    main()
