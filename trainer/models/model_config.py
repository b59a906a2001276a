"""The self-describing model configuration stored in every checkpoint, so a checkpoint rebuilds its model alone."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

Upsample = Literal["deconv", "bilinear"]
FirstLayerInit = Literal["zero", "mean"]
Head = Literal["full", "light"]
#: Input channels per input contract (spec §3): RGB; + positive and negative click distances; + previous prediction.
SEMANTIC_CHANNELS, INTERACTIVE_CHANNELS, PREV_MASK_CHANNELS = 3, 5, 6


@dataclass(frozen=True)
class ModelConfig:
    """Everything `build_model` needs.

    `weights` is `imagenet`, `none` or a file path (used at build time only; a checkpoint's own weights replace it).
    `in_channels` is 3 (semantic: RGB), 5 (interactive: RGB + positive and negative click distances) or 6
    (interactive with `--prev-mask`: + the previous prediction's probabilities, zero before the first click).
    `num_classes` is 1 for the interactive task (one logit, BCE) and 21 for VOC semantic segmentation.
    `head` is `full` (faithful convolutionalised fc6/fc7 for VGG/AlexNet) or `light` (1×1 fc6, an explicit option).
    """

    backbone: str = "resnet18"
    stride: int = 8
    upsample: Upsample = "deconv"
    in_channels: int = 5
    num_classes: int = 1
    weights: str = "none"
    first_layer_init: FirstLayerInit = "zero"
    head: Head = "full"

    def __post_init__(self) -> None:
        if self.stride not in (8, 16, 32):
            raise ValueError(f"stride must be 8, 16 or 32, got {self.stride}")
        if self.upsample not in ("deconv", "bilinear"):
            raise ValueError(f"upsample must be 'deconv' or 'bilinear', got {self.upsample!r}")
        if self.in_channels not in (SEMANTIC_CHANNELS, INTERACTIVE_CHANNELS, PREV_MASK_CHANNELS):
            raise ValueError(f"in_channels must be 3 (semantic), 5 (interactive) or 6 (interactive with the previous "
                             f"mask), got {self.in_channels}")
        if self.num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {self.num_classes}")
        if self.first_layer_init not in ("zero", "mean"):
            raise ValueError(f"first_layer_init must be 'zero' or 'mean', got {self.first_layer_init!r}")
        if self.head not in ("full", "light"):
            raise ValueError(f"head must be 'full' or 'light', got {self.head!r}")

    @property
    def prev_mask(self) -> bool:
        """Whether the input has the previous-prediction channel (`ifcn-train --prev-mask`)."""
        return self.in_channels == PREV_MASK_CHANNELS

    @property
    def name(self) -> str:
        """Human-readable name, e.g. `resnet18-8s-deconv`."""
        return f"{self.backbone}-{self.stride}s-{self.upsample}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        return cls(**d)
