"""Checkpoints: written atomically, loaded without unpickling arbitrary objects (`weights_only=True`).

A checkpoint is a dict of tensors and plain Python values: `model_config` (a `ModelConfig` as a dict), `task`
(`interactive` or `semantic`), `model` (state dict) and, for training runs, progress and provenance; `last.pt` adds
the optimizer/scheduler/scaler/RNG states a resume needs (see `run_state.py`).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from ifcn.disk import disk_full_guard
from ifcn.io import atomic_write_bytes
from ifcn.trainer.models.config import ModelConfig
from ifcn.trainer.models.transfer import TransferReport, transfer_weights
from ifcn.trainer.models.weights import safe_load

WRITTEN_BY = "a checkpoint written by `ifcn-train` (RUN/best.pt or RUN/last.pt)"


def save_checkpoint(path: Path, state: dict[str, Any], fix: str = "free some space, then rerun") -> None:
    """Serialise `state` and write it atomically, so an interrupted save never leaves a loadable half-file; a full
    disk raises `DiskFullError` naming `path`, the size and `fix`, and leaves the previous file in place."""
    for required in ("model_config", "task", "model"):
        if required not in state:
            raise ValueError(f"a checkpoint needs {required!r}")
    buf = io.BytesIO()
    torch.save(state, buf)
    with disk_full_guard(path, buf.tell(), fix):
        atomic_write_bytes(Path(path), buf.getvalue())


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint safely; errors name the file and say what to do."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint; pass {WRITTEN_BY}")
    try:
        state = safe_load(path, map_location)
    except ValueError as e:
        raise ValueError(f"{path}: not a readable ifcn checkpoint ({e}); pass {WRITTEN_BY}") from None
    if not isinstance(state, dict) or "model_config" not in state or "model" not in state:
        raise ValueError(f"{path}: not an ifcn checkpoint (no model_config/model); pass {WRITTEN_BY}")
    return state


def load_model(path: Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, ModelConfig, dict[str, Any]]:
    """Rebuild the model a checkpoint describes, load its weights, and return (model in eval mode, config, state)."""
    from ifcn.trainer.models import build_model

    state = load_checkpoint(path, map_location=device)
    config = ModelConfig.from_dict({**state["model_config"], "weights": "none"})
    model = build_model(config)
    model.load_state_dict(state["model"])
    return model.to(device).eval(), config, state


def init_from_checkpoint(model: torch.nn.Module, config: ModelConfig, path: Path) -> TransferReport:
    """Start `model` (built from `config`) from the weights of the checkpoint at `path` (`--init-from`), by the rules
    of `models/transfer.py`. A checkpoint of another architecture is refused with the flags that would match it."""
    state = load_checkpoint(path)
    source = ModelConfig.from_dict({**state["model_config"], "weights": "none"})
    try:
        return transfer_weights(model, state["model"], config.first_layer_init)
    except ValueError as e:
        raise ValueError(f"--init-from {path}: a {source.name} checkpoint ({source.in_channels} channels, "
                         f"{source.num_classes} outputs, head {source.head}) does not fit this run's {config.name} "
                         f"({config.in_channels} channels, {config.num_classes} outputs, head {config.head}): {e}. "
                         f"Fix: pass that run's --arch {source.backbone} --stride {source.stride} --upsample "
                         f"{source.upsample} --head {source.head}, or another checkpoint") from None
