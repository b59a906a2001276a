"""`InputSpec`: how images and clicks become the network input (spec §3), stored with the model in every checkpoint.

Training writes it into the checkpoint's `model_config` (key `input_spec`); validation, NoC, the Predictor, the export
and the demo read it back, so a model is always fed what it was trained on. Checkpoints written before it existed
read as `InputSpec.legacy(...)`: the values every model had then.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

#: ImageNet statistics shared by every torchvision classification weight set (RGB in [0, 1]).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Click encodings: truncated distance maps (iFCN), or binary disks of `disk_radius` pixels per click (RITM).
CLICK_ENCODINGS = ("distance", "disk")
ClickEncoding = Literal["distance", "disk"]


@dataclass(frozen=True)
class InputSpec:
    """The network-input contract of one model.

    RGB is normalised as (pixel / 255 - mean) / std. With `clicks` (the interactive task) two channels follow,
    positive then negative: `distance` = the distance in input pixels to the nearest click of that sign, clipped at
    `clip` and divided by it (1.0 without a click); `disk` = 1.0 within `disk_radius` pixels of a click of that sign,
    else 0.0. `prev_mask` adds a last channel with the previous prediction's probabilities (zeros at the first click).
    """

    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    clicks: bool = True
    click_encoding: ClickEncoding = "distance"
    clip: float = 255.0
    disk_radius: float = 5.0
    prev_mask: bool = False

    def __post_init__(self) -> None:
        if self.click_encoding not in CLICK_ENCODINGS:
            raise ValueError(f"click_encoding must be one of {CLICK_ENCODINGS}, got {self.click_encoding!r}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError(f"mean and std need 3 values each (std > 0), got {self.mean} and {self.std}")
        if self.clip <= 0 or self.disk_radius <= 0:
            raise ValueError(f"clip and disk_radius must be positive, got {self.clip} and {self.disk_radius}")
        if self.prev_mask and not self.clicks:
            raise ValueError("the previous-mask channel belongs to the interactive input (clicks=True)")

    @property
    def channels(self) -> int:
        """3 (RGB), 5 (+ positive and negative clicks) or 6 (+ the previous prediction)."""
        return 3 + 2 * self.clicks + self.prev_mask

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (lists, not tuples), as checkpoints and exported contracts store them."""
        return {**asdict(self), "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> InputSpec:
        return cls(**{**d, "mean": tuple(d["mean"]), "std": tuple(d["std"])})

    @classmethod
    def legacy(cls, in_channels: int) -> InputSpec:
        """The contract of a checkpoint written before `InputSpec` existed: ImageNet normalisation, distance maps
        clipped at 255, and the channels its first convolution takes (3, 5, or 6 with the previous mask)."""
        return cls(clicks=in_channels > 3, prev_mask=in_channels == 6)
