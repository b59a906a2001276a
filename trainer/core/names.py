"""The trainer's vocabulary, defined once: task names and run-file names (the
device choices every tool accepts are `ifcn.cli_options.DEVICE_HELP`)."""

from __future__ import annotations

from ifcn.shards.check import TASKS

#: The two tasks a checkpoint is trained for (the shard contract's names).
INTERACTIVE, SEMANTIC = TASKS
#: A run folder's checkpoints: the latest state (resumable) and the best model by the validation metric.
LAST, BEST = "last.pt", "best.pt"

__all__ = ["BEST", "INTERACTIVE", "LAST", "SEMANTIC", "TASKS"]
