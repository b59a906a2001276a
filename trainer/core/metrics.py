"""Segmentation metrics kept on the device: a confusion matrix (semantic) and per-sample foreground IoU (interactive).

The trainer's validation and `ifcn-eval` share these, so a number means the same thing in both reports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ifcn.labels import VOID
from ifcn.trainer.core.device import all_reduce_sum


@dataclass(frozen=True)
class SemanticScores:
    """Scores of a confusion matrix. `per_class_iou` is NaN for a class absent from both target and prediction;
    `miou` averages the other classes (the usual VOC convention)."""

    miou: float
    pixel_accuracy: float
    per_class_iou: tuple[float, ...]


class ConfusionMatrix:
    """Counts (target, prediction) pixel pairs over a whole split; rows = target class, columns = predicted class.

    Pixels whose target is `ignore_index` (VOC void) are left out. The matrix lives on `device` so accumulation
    needs no host round trip per batch.
    """

    def __init__(self, num_classes: int, device: torch.device | str, ignore_index: int = VOID):
        if num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch: `pred` and `target` are integer tensors of the same shape (any shape)."""
        if pred.shape != target.shape:
            raise ValueError(f"prediction shape {tuple(pred.shape)} differs from target shape {tuple(target.shape)}")
        target = target.reshape(-1).to(self.matrix.device, torch.int64)
        pred = pred.reshape(-1).to(self.matrix.device, torch.int64)
        keep = target != self.ignore_index
        target, pred = target[keep], pred[keep]
        n = self.num_classes
        if target.numel() and (int(target.max()) >= n or int(target.min()) < 0):
            raise ValueError(f"target holds a class outside 0..{n - 1} (other than ignore index {self.ignore_index})")
        if pred.numel() and (int(pred.max()) >= n or int(pred.min()) < 0):
            raise ValueError(f"prediction holds a class outside 0..{n - 1}")
        self.matrix += torch.bincount(target * n + pred, minlength=n * n).view(n, n)

    def all_reduce(self) -> None:
        """Sum the matrices of all DDP ranks (a no-op without an initialised process group)."""
        all_reduce_sum(self.matrix)

    def scores(self) -> SemanticScores:
        m = self.matrix.double()
        tp = m.diagonal()
        union = m.sum(0) + m.sum(1) - tp
        iou = torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, math.nan))
        present = ~iou.isnan()
        total = m.sum()
        miou = float(iou[present].mean()) if bool(present.any()) else math.nan
        accuracy = float(tp.sum() / total) if float(total) > 0 else math.nan
        return SemanticScores(miou, accuracy, tuple(float(v) for v in iou.tolist()))


def foreground_iou(pred: torch.Tensor, target: torch.Tensor, ignore: torch.Tensor) -> torch.Tensor:
    """IoU of the foreground per sample, over non-ignored pixels: (B, H, W) bool tensors -> (B,) float64.

    float64 because the NoC protocol compares IoUs with targets such as 0.90: 9/10 in float32 is 0.8999999762, which
    would miss NoC@90. When both prediction and target are empty (union = 0) the IoU is 1.0: the prediction agrees
    with the target exactly, and the NoC protocol then counts the threshold as reached rather than dividing by zero.
    """
    if not (pred.shape == target.shape == ignore.shape) or pred.dim() != 3:
        raise ValueError(f"pred, target and ignore must all be (B, H, W); got {tuple(pred.shape)}, "
                         f"{tuple(target.shape)}, {tuple(ignore.shape)}")
    keep = ~ignore
    p, t = pred & keep, target & keep
    inter = (p & t).flatten(1).sum(1)
    union = (p | t).flatten(1).sum(1)
    iou = inter.double() / union.clamp(min=1).double()
    return torch.where(union > 0, iou, torch.ones_like(iou))
