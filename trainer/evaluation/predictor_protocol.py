"""What the NoC engine needs from a predictor: a batch of (image, clicks) in, foreground probabilities out.

The engine only depends on this protocol, so tests drive it with rule-based predictors and `ifcn-eval noc` with the
public `ifcn.trainer.inference.Predictor`, the one place that builds the network input at inference.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch

from ifcn.trainer.core.clicks import Click


class BatchPredictor(Protocol):
    """What the NoC engine calls once per click step for a batch of objects of one image size.

    A predictor with a true `prev_mask` attribute (a `--prev-mask` model) is also given `prev`, each object's
    previous probabilities (B, H, W) on `device` (zeros before its first click); others are called without it.
    """

    device: torch.device

    def __call__(self, images: torch.Tensor, clicks: Sequence[Sequence[Click]]) -> torch.Tensor:
        """Foreground probabilities (B, H, W) for uint8 RGB `images` (B, 3, H, W) on `device`, one click list each."""
        ...
