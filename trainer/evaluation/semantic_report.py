"""The semantic (FCN) report: per-class IoU table and the row-normalised confusion matrix as a PNG."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ifcn.io import atomic_write_bytes
from ifcn.plotting import new_figure, save_png
from ifcn.trainer.core.metrics import SemanticScores

CONFUSION_NAME = "confusion.png"
SUMMARY_NAME = "semantic.json"
#: The files of a `miou --out` report folder.
SEMANTIC_REPORT_FILES = (SUMMARY_NAME, CONFUSION_NAME)


def _pct(v: float) -> str:
    return "     n/a" if math.isnan(v) else f"{v * 100:7.2f}%"


def format_scores(scores: SemanticScores, names: Sequence[str]) -> str:
    """Per-class IoU (n/a = class absent from targets and predictions), then mIoU and pixel accuracy."""
    width = max(len(n) for n in (*names, "pixel accuracy"))
    lines = [f"{name:<{width}} {_pct(iou)}" for name, iou in zip(names, scores.per_class_iou, strict=True)]
    rule = "-" * (width + 9)
    return "\n".join([rule, *lines, rule, f"{'mIoU':<{width}} {_pct(scores.miou)}",
                      f"{'pixel accuracy':<{width}} {_pct(scores.pixel_accuracy)}", rule])


def normalise_rows(matrix: np.ndarray) -> np.ndarray:
    """Each row (target class) divided by its pixel count; rows of absent classes stay zero."""
    matrix = np.asarray(matrix, dtype=np.float64)
    totals = matrix.sum(1, keepdims=True)
    return np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)


def confusion_png(matrix: np.ndarray, names: Sequence[str], path: Path) -> None:
    """Write the row-normalised confusion matrix (rows = target, columns = prediction) as a PNG."""
    norm = normalise_rows(matrix)
    n = len(names)
    fig, ax = new_figure(max(4.0, 0.4 * n + 2), max(3.5, 0.4 * n + 1.5))
    im = ax.imshow(norm, vmin=0.0, vmax=1.0, cmap="viridis")
    ax.set_xticks(range(n), names, rotation=90, fontsize="small")
    ax.set_yticks(range(n), names, fontsize="small")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("target class")
    ax.set_title("confusion matrix (rows normalised)")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    save_png(fig, path)


def semantic_summary(scores: SemanticScores, matrix: np.ndarray, names: Sequence[str]) -> dict[str, Any]:
    """JSON-ready figures: mIoU, pixel accuracy, per-class IoU by name (None = absent) and the raw matrix."""
    return {"miou": scores.miou, "pixel_accuracy": scores.pixel_accuracy,
            "per_class_iou": {n: (None if math.isnan(v) else v) for n, v in zip(names, scores.per_class_iou,
                                                                                  strict=True)},
            "confusion": np.asarray(matrix).astype(np.int64).tolist()}


def write_semantic_report(out: Path, summary: dict[str, Any], matrix: np.ndarray, names: Sequence[str]) -> None:
    """Write semantic.json and confusion.png into `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    confusion_png(matrix, names, out / CONFUSION_NAME)
    atomic_write_bytes(out / SUMMARY_NAME, (json.dumps(summary, indent=2, sort_keys=True) + "\n").encode())
