"""The backbone trunk: a classifier cut after its stride-32 tap, returning the stride-8/16/32 feature maps."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from ifcn.trainer.models.probe import Tap, extractor


class Trunk(nn.Module):
    """Wraps a traced torchvision feature extractor; the classifier's own parameter names are kept under `body.`."""

    def __init__(self, model: nn.Module, taps: tuple[Tap, Tap, Tap]) -> None:
        super().__init__()
        self.taps = taps
        self.body = extractor(model, {t.node: str(t.stride) for t in taps})

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.body(x)
        f8, f16, f32 = (out[str(t.stride)].permute(0, 3, 1, 2) if t.nhwc else out[str(t.stride)] for t in self.taps)
        return f8, f16, f32

    def __deepcopy__(self, memo: dict[int, Any]) -> Trunk:
        """Copy, keeping the train/eval mode: torchvision's traced module comes back from a deepcopy in train mode."""
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        new.__dict__.update(copy.deepcopy(self.__dict__, memo))
        new.train(self.training)
        return new
