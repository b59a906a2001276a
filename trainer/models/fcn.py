"""The FCN network: trunk → (VGG/AlexNet: convolutional fc6/fc7) → score head, logits at the input's size."""

from __future__ import annotations

import torch
from torch import nn

from ifcn.trainer.models.heads import FCNHead
from ifcn.trainer.models.model_config import ModelConfig
from ifcn.trainer.models.trunk import Trunk


class FCN(nn.Module):
    """(B, in_channels, H, W) → logits (B, num_classes, H, W) for any H, W ≥ 32.

    `config` is kept so that whoever holds the model can save it with the weights (see `trainer/core/checkpoint.py`).
    """

    def __init__(self, backbone: Trunk, fc: nn.Module, head: FCNHead, config: ModelConfig) -> None:
        super().__init__()
        self.backbone = backbone
        self.fc = fc
        self.head = head
        self.config = config

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f8, f16, f32 = self.backbone(x)
        return self.head(f8, f16, self.fc(f32), x.shape[-2:])
