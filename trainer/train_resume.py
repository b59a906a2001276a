"""Resume policy: which settings a resumed run may change, and loading the state it continues from.

A resumed run must end as the uninterrupted run would have, so every setting that shapes the optimisation (model,
data, extra click rounds, optimiser, schedule, seed) must equal the checkpoint's; the others (where the files are,
how many workers, how often to log or validate, the time budget) may change, and so may `--epochs` (to train longer)
unless a schedule depends on the run length.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

from ifcn.flags import flag
from ifcn.trainer.core.checkpoint import load_checkpoint
from ifcn.trainer.core.names import BEST, LAST
from ifcn.trainer.iterative import default_prob
from ifcn.trainer.train_config import (
    DEFAULT_FIRST_LAYER_INIT,
    DEFAULT_NUM_CLASSES,
    SetupError,
    TrainConfig,
    settings_of,
)

#: Settings a resumed run may change; every other one must match the checkpoint's, or the run would not be the same.
RESUMABLE_CHANGES = frozenset({"out", "shards", "val_shards", "workers", "device", "progress", "log_every",
                               "val_every", "val_batch_size", "val_limit", "verify_checksums", "sample_checksums",
                               "resume", "compile", "channels_last", "weights", "init_from", "epochs", "max_minutes",
                               "tensorboard", "overwrite"})


def _comparable(settings: dict[str, Any]) -> dict[str, Any]:
    """Settings with the task-specific defaults filled in, so an unset value equals its default; a run stored before
    `--iterative` and `--prev-mask` existed had them off."""
    d = settings_of(settings)
    if d.get("task", "interactive") == "semantic":
        d["num_classes"] = d.get("num_classes") or DEFAULT_NUM_CLASSES
    else:
        d["first_layer_init"] = d.get("first_layer_init") or DEFAULT_FIRST_LAYER_INIT
        d.setdefault("iterative", 0)
        d.setdefault("prev_mask", False)
        if d["iterative"] and d.get("iterative_prob") is None:
            d["iterative_prob"] = default_prob(d["iterative"])
    if "scale_range" in d:
        d["scale_range"] = list(d["scale_range"])
    return d


def resume_mismatches(stored: dict[str, Any], config: TrainConfig) -> list[str]:
    """The settings of `config` a resume of a run stored with `stored` may not change, as flag texts."""
    old, new = _comparable(stored), _comparable(config.to_dict())
    out = []
    for f in fields(TrainConfig):
        if f.name in RESUMABLE_CHANGES or f.name not in old:
            continue
        if old[f.name] != new.get(f.name):
            out.append(f"{flag(f.name)} {new.get(f.name)!r} (the run used {old[f.name]!r})")
    if config.epochs != stored.get("epochs") and config.schedule != "none":
        out.append(f"--epochs {config.epochs} (the run used {stored.get('epochs')}; the {config.schedule} schedule "
                   "depends on the run length)")
    return out


def load_resume_state(run_dir: Path, config: TrainConfig, manifest_id: str | None) -> dict[str, Any]:
    """The state in `run_dir/last.pt`, after checking that `config` continues that run unchanged."""
    try:
        state = load_checkpoint(run_dir / LAST)
    except (ValueError, FileNotFoundError) as e:
        raise SetupError(f"--resume: {e}. A checkpoint is only renamed to {LAST} once complete, so this file was "
                         f"damaged afterwards; move it away to restart, or copy {BEST} over it") from None
    if "optimizer" not in state:
        raise SetupError(f"--resume: {run_dir / LAST} holds model weights only (no optimizer state), so the run "
                         f"cannot continue exactly; start a new run with --init-from {run_dir / LAST}")
    mismatches = resume_mismatches(state.get("train_config", {}), config)
    if mismatches:
        raise SetupError("--resume: these settings differ from the run being resumed: " + "; ".join(mismatches))
    if state.get("manifest_id") != manifest_id:
        raise SetupError(f"--resume: the shards' manifest id is {manifest_id}, the run was trained on "
                         f"{state.get('manifest_id')}; resume with the same --shards")
    return state
