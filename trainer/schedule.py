"""Learning-rate schedules: linear warm-up, then constant, polynomial (power 0.9, as in FCN/DeepLab) or cosine decay.

The factor is a pure function of the step, held in a plain dataclass so that the scheduler's state dict contains
only numbers and strings (checkpoints load with `weights_only=True`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

SCHEDULES = ("none", "poly", "cosine")


@dataclass(frozen=True)
class Schedule:
    """Multiplier of the base learning rate at optimizer step `step` (0-based) of `total_steps`."""

    kind: str
    total_steps: int
    warmup_steps: int = 0
    power: float = 0.9

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULES:
            raise ValueError(f"--schedule must be one of {SCHEDULES}, got {self.kind!r}")
        if self.warmup_steps < 0:
            raise ValueError(f"--warmup-steps must be ≥ 0, got {self.warmup_steps}")
        if self.total_steps < 1:
            raise ValueError(f"a schedule needs at least one step, got {self.total_steps}")
        if self.warmup_steps >= self.total_steps and self.warmup_steps:
            raise ValueError(f"--warmup-steps {self.warmup_steps} is not shorter than the whole run "
                             f"({self.total_steps} steps); lower it or train longer")

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if self.kind == "none":
            return 1.0
        progress = min(1.0, (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps))
        if self.kind == "poly":
            return (1.0 - progress) ** self.power
        return 0.5 * (1.0 + math.cos(math.pi * progress))


def make_scheduler(optimizer: torch.optim.Optimizer, schedule: Schedule) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR stepping once per optimizer step."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
