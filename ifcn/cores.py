"""How many CPU cores this process may use: the default (and the ceiling) of every `--workers` option.

`os.cpu_count()` counts the machine's cores, not the ones a container, `taskset` or a batch scheduler lets this
process run on; starting more worker processes than that only makes them compete for the same cores.
"""

from __future__ import annotations

import os


def usable_cores() -> int:
    """The number of cores this process may run on (at least 1)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS and Windows have no affinity call
        return max(1, os.cpu_count() or 1)
