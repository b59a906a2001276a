"""What a training checkpoint holds besides the weights, and how a run continues from it.

`last.pt` holds everything an exact continuation needs (optimizer, scheduler, scaler, RNG states, progress); `best.pt`
holds the model and its provenance only (no optimizer state: about a third of the size for Adam), because it is
evaluated or used to start other runs, never resumed. Tensors and plain values only, so `load_checkpoint` can use
`weights_only=True`. The data order needs no generator state: it is a pure function of (seed, epoch, rank).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from ifcn.trainer.core.checkpoint import checkpoint_model_config
from ifcn.trainer.models.model_config import ModelConfig
from ifcn.trainer.train_config import TrainConfig

#: Parts of a training state that only resuming needs (left out of best.pt).
RESUME_ONLY = ("optimizer", "scheduler", "scaler", "rng")


@dataclass(frozen=True)
class Progress:
    """Where a run stands. `epoch` epochs are complete; `epoch_step` > 0 only after a `--max-minutes` stop inside
    epoch `epoch + 1`, whose first `epoch_step` steps are done with summed loss `epoch_loss` (over all ranks).
    `last_val` and `last_loss` are the metrics and mean training loss of the last completed epoch."""

    epoch: int = 0
    step: int = 0
    epoch_step: int = 0
    epoch_loss: float = 0.0
    best: float | None = None
    best_epoch: int | None = None
    last_val: dict[str, float] = field(default_factory=dict)
    last_loss: float = math.nan


def rng_state() -> dict[str, Any]:
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def training_state(*, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                   scheduler: torch.optim.lr_scheduler.LRScheduler, scaler: torch.amp.GradScaler, progress: Progress,
                   model_config: ModelConfig, config: TrainConfig, manifest_id: str | None,
                   metric: str | None) -> dict[str, Any]:
    """The full state of a run (what `last.pt` holds)."""
    return {"model_config": checkpoint_model_config(model_config, config.input_spec()), "task": config.task,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
            "rng": rng_state(), "epoch": progress.epoch, "step": progress.step, "epoch_step": progress.epoch_step,
            "epoch_loss": progress.epoch_loss, "seed": config.seed, "manifest_id": manifest_id,
            "train_config": config.to_dict(), "metric": metric, "best_metric": progress.best,
            "best_epoch": progress.best_epoch, "val": progress.last_val, "train_loss": progress.last_loss}


def model_only(state: dict[str, Any]) -> dict[str, Any]:
    """A training state without what only resuming needs (what `best.pt` holds)."""
    return {k: v for k, v in state.items() if k not in RESUME_ONLY}


def restore_training(state: dict[str, Any], optimizer: torch.optim.Optimizer,
                     scheduler: torch.optim.lr_scheduler.LRScheduler, scaler: torch.amp.GradScaler) -> Progress:
    """Load the optimizer, scheduler, scaler and RNG states of `state` (a `last.pt`) and return its progress."""
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    torch.set_rng_state(state["rng"]["torch"])
    if state["rng"]["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    return Progress(epoch=int(state["epoch"]), step=int(state["step"]), epoch_step=int(state.get("epoch_step", 0)),
                    epoch_loss=float(state.get("epoch_loss", 0.0)), best=state.get("best_metric"),
                    best_epoch=state.get("best_epoch"), last_val=dict(state.get("val") or {}),
                    last_loss=float(state.get("train_loss", math.nan)))
