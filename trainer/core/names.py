"""The trainer's vocabulary, defined once: task names, run-file names and the device choices every tool accepts."""

from __future__ import annotations

from ifcn.shards.check import TASKS

#: The two tasks a checkpoint is trained for (the shard contract's names).
INTERACTIVE, SEMANTIC = TASKS
#: A run folder's checkpoints: the latest state (resumable) and the best model by the validation metric.
LAST, BEST = "last.pt", "best.pt"
#: What `--device` accepts: `auto` (CUDA when present), or any torch device string (`cpu`, `cuda`, `cuda:1`, `mps`).
DEVICE_HELP = "auto = CUDA when available, else CPU; or any torch device: cpu, cuda, cuda:1, mps"

__all__ = ["BEST", "DEVICE_HELP", "INTERACTIVE", "LAST", "SEMANTIC", "TASKS"]
