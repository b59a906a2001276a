"""Checkpoints: written atomically, loaded without unpickling arbitrary objects (`weights_only=True`).

A checkpoint is a dict of tensors and plain Python values: `model_config` (a `ModelConfig` as a dict), `task`
(`interactive` or `semantic`), `model` (state dict) and, for training runs, optimizer/scheduler/scaler state,
epoch, step, RNG states and `manifest_id`.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from ifcn.io import atomic_write_bytes
from ifcn.trainer.models.config import ModelConfig


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Serialise `state` and write it atomically, so an interrupted save never leaves a loadable half-file."""
    for required in ("model_config", "task", "model"):
        if required not in state:
            raise ValueError(f"a checkpoint needs {required!r}")
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(Path(path), buf.getvalue())


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint safely; errors name the file and say what to do."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint; pass a file written by `ifcn-train` (RUN_DIR/best.pt)")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises several types for truncated or foreign files
        raise ValueError(f"{path}: not a readable ifcn checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(state, dict) or "model_config" not in state or "model" not in state:
        raise ValueError(f"{path}: not an ifcn checkpoint (no model_config/model); was it written by `ifcn-train`?")
    return state


def load_model(path: Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, ModelConfig, dict[str, Any]]:
    """Rebuild the model a checkpoint describes, load its weights, and return (model in eval mode, config, state)."""
    from ifcn.trainer.models import build_model

    state = load_checkpoint(path, map_location=device)
    config = ModelConfig.from_dict({**state["model_config"], "weights": "none"})
    model = build_model(config)
    model.load_state_dict(state["model"])
    return model.to(device).eval(), config, state
