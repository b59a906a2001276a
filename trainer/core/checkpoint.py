"""Checkpoints: written atomically, loaded without unpickling arbitrary objects (`weights_only=True`).

A checkpoint is a dict of tensors and plain Python values: `model_config` (a `ModelConfig` as a dict, with the
model's `InputSpec` under `input_spec`; checkpoints written before it read as `InputSpec.legacy`), `task`
(`interactive` or `semantic`), `model` (state dict) and, for training runs, progress and provenance; `last.pt` adds
the optimizer/scheduler/scaler/RNG states a resume needs (see `run_state.py`).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, NamedTuple

import torch

from ifcn.disk import disk_full_guard
from ifcn.io import atomic_write_bytes
from ifcn.trainer.core.input_spec import InputSpec
from ifcn.trainer.models.model_config import ModelConfig
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


def checkpoint_model_config(config: ModelConfig, spec: InputSpec) -> dict[str, Any]:
    """What a checkpoint stores under `model_config`: the model's configuration and its input contract."""
    if spec.channels != config.in_channels:
        raise ValueError(f"the input contract has {spec.channels} channels but the model takes {config.in_channels}")
    return {**config.to_dict(), "input_spec": spec.to_dict()}


def read_model_config(state: dict[str, Any]) -> tuple[ModelConfig, InputSpec]:
    """The (model configuration, input contract) of a loaded checkpoint; the contract of a checkpoint written before
    `InputSpec` existed is `InputSpec.legacy` (the values every model had then)."""
    stored = dict(state["model_config"])
    spec_dict = stored.pop("input_spec", None)
    config = ModelConfig.from_dict({**stored, "weights": "none"})
    spec = InputSpec.from_dict(spec_dict) if spec_dict is not None else InputSpec.legacy(config.in_channels)
    if spec.channels != config.in_channels:
        raise ValueError(f"its input contract has {spec.channels} channels but its model takes {config.in_channels}")
    return config, spec


class LoadedModel(NamedTuple):
    """A checkpoint's model (in eval mode), its configuration and input contract, and the whole stored state."""

    model: torch.nn.Module
    config: ModelConfig
    spec: InputSpec
    state: dict[str, Any]


def load_model(path: Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Rebuild the model a checkpoint describes and load its weights."""
    from ifcn.trainer.models import build_model

    state = load_checkpoint(path, map_location=device)
    try:
        config, spec = read_model_config(state)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: a damaged model_config ({e}); pass {WRITTEN_BY}") from None
    model = build_model(config)
    model.load_state_dict(state["model"])
    return LoadedModel(model.to(device).eval(), config, spec, state)


#: Which checkpoint task each `ifcn-eval` command needs, and the commands to use instead.
_TASK_OF = {"noc": "interactive", "iou": "interactive", "miou": "semantic", "demo": "interactive",
            "predict": "semantic"}
_OTHER = {"interactive": "`ifcn-eval noc` or `ifcn-eval iou`, or click on images with `ifcn-eval demo` or "
                         "`ifcn.Predictor.predict(image, clicks)`",
          "semantic": "`ifcn-eval miou`, or segment images with `ifcn-eval predict`"}


def load_for(command: str, checkpoint: Path, device: torch.device) -> LoadedModel:
    """Load a checkpoint's model for the `ifcn-eval` command `command`, refusing one trained for the other task."""
    loaded = load_model(Path(checkpoint), device)
    want, got = _TASK_OF[command], loaded.state.get("task")
    if got != want:
        raise ValueError(f"{checkpoint}: a checkpoint of task {got!r}, but `ifcn-eval {command}` needs task "
                         f"{want!r}; use it with {_OTHER.get(got, 'the command for its task')}, or pass "
                         "another --checkpoint")
    return loaded


def init_from_checkpoint(model: torch.nn.Module, config: ModelConfig, path: Path) -> TransferReport:
    """Start `model` (built from `config`) from the weights of the checkpoint at `path` (`--init-from`), by the rules
    of `models/transfer.py`. A checkpoint of another architecture is refused with the flags that would match it."""
    state = load_checkpoint(path)
    source, _ = read_model_config(state)
    try:
        return transfer_weights(model, state["model"], config.first_layer_init)
    except ValueError as e:
        raise ValueError(f"--init-from {path}: a {source.name} checkpoint ({source.in_channels} channels, "
                         f"{source.num_classes} outputs, head {source.head}) does not fit this run's {config.name} "
                         f"({config.in_channels} channels, {config.num_classes} outputs, head {config.head}): {e}. "
                         f"Fix: pass that run's --arch {source.backbone} --stride {source.stride} --upsample "
                         f"{source.upsample} --head {source.head}, or another checkpoint") from None
