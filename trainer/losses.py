"""Training losses (spec §5): BCE or normalised focal loss (`--loss`) for the interactive task, cross-entropy for
the semantic one. Targets are uint8 with 255 = ignored (void and crop padding)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from ifcn.labels import VOID


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


def normalized_focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """Normalised focal loss (RITM): each pixel's BCE weighted by the focal factor (1 - p_t)^gamma, the factors of
    each image rescaled (as constants) so they sum to its count of non-ignored pixels; then, as `interactive_loss`,
    the sum over the batch divided by the batch's non-ignored pixels. Easy pixels thus give way to hard ones without
    shrinking the loss as the model improves, as plain focal loss does."""
    keep = (target != VOID).float()
    positive = (target == 1).float()
    x = logits[:, 0].float()
    per_pixel = F.binary_cross_entropy_with_logits(x, positive, reduction="none")
    p = torch.sigmoid(x)
    p_t = torch.where(positive > 0, p, 1 - p)
    focal = (1 - p_t).pow(gamma) * keep
    pixels = keep.sum(dim=(1, 2))
    with torch.no_grad():
        scale = pixels / focal.sum(dim=(1, 2)).clamp(min=torch.finfo(focal.dtype).tiny)
    return (focal * scale.view(-1, 1, 1) * per_pixel).sum() / pixels.sum().clamp(min=1)


LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
#: `--loss` choices of the interactive task.
INTERACTIVE_LOSSES: dict[str, LossFn] = {"bce": interactive_loss, "nfl": normalized_focal_loss}


def loss_function(task: str, loss: str = "bce") -> LossFn:
    """The training loss of `task`: `--loss` picks the interactive one; the semantic task has cross-entropy only."""
    return semantic_loss if task == "semantic" else INTERACTIVE_LOSSES[loss]
