"""How many CPU cores this process may use: the bound of every `--workers` default."""

from __future__ import annotations

import os


def available_cores() -> int:
    """The cores this process may run on: its CPU affinity where the OS reports one (containers, `taskset`, batch
    schedulers), else the machine's count."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
