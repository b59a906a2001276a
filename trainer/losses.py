"""Training losses (spec §5), keyed by task. Targets are uint8 with 255 = ignored (void and crop padding)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from ifcn.shards.records import VOID


def interactive_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BCE-with-logits of the single foreground logit (B, 1, H, W) against the object mask (B, H, W) in {0, 1},
    averaged over the batch's non-ignored pixels (a batch with none gives 0, not NaN)."""
    keep = target != VOID
    per_pixel = F.binary_cross_entropy_with_logits(logits[:, 0].float(), (target == 1).float(), reduction="none")
    return (per_pixel * keep).sum() / keep.sum().clamp(min=1)


def semantic_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over classes (B, C, H, W) against class ids (B, H, W), 255 ignored, mean over kept pixels."""
    target = target.long()
    total = F.cross_entropy(logits.float(), target, ignore_index=VOID, reduction="sum")
    return total / (target != VOID).sum().clamp(min=1)


LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "interactive": interactive_loss,
    "semantic": semantic_loss,
}
