"""What each shard was built from: every input file's size, modification time and sha256, kept in its sidecar.

A rerun of `ifcn-prep sample` keeps a finished shard only when its inputs are unchanged, so an edited annotation (an
object removed from a mask, a mask made invalid) rebuilds the shards that read it instead of leaving the old clicks
in place; `ifcn-prep verify` reports such stale shards. A file whose size and modification time (in nanoseconds) are
as recorded is taken as unchanged without reading it; otherwise its sha256 decides (a file only touched is unchanged).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ifcn.io import file_sha256

#: The size recorded for a file that was missing when the shard was built (an image skipped for it).
MISSING = -1


def fingerprint_files(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """The record of `paths` (each once, in order): path, bytes, mtime_ns and sha256; a missing file as `MISSING`."""
    records = []
    for path in dict.fromkeys(map(Path, paths)):
        try:
            stat = os.stat(path)
            sha256, size = file_sha256(path)
        except OSError:
            records.append({"path": str(path), "bytes": MISSING, "mtime_ns": 0, "sha256": ""})
            continue
        records.append({"path": str(path), "bytes": size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256})
    return records


def _changed(record: Mapping[str, Any]) -> bool:
    path = Path(record["path"])
    try:
        stat = os.stat(path)
    except OSError:
        return record["bytes"] != MISSING
    if record["bytes"] == MISSING:
        return True
    if (stat.st_size, stat.st_mtime_ns) == (record["bytes"], record["mtime_ns"]):
        return False
    try:
        return file_sha256(path)[0] != record["sha256"]
    except OSError:
        return True


def changed_files(inputs: Sequence[Mapping[str, Any]] | None) -> list[str] | None:
    """The recorded input files that changed since (created, removed, other content); None when nothing was
    recorded (a shard of an older version: its inputs are unknown, so it counts as stale)."""
    if inputs is None:
        return None
    try:
        return [str(r["path"]) for r in inputs if _changed(r)]
    except (KeyError, TypeError):
        return None


def describe_changes(changed: Sequence[str] | None, limit: int = 3) -> str:
    """`a.png, b.png (and 2 more)`, or why the inputs are unknown."""
    if changed is None:
        return "the files it was built from are not recorded (an older version wrote it)"
    more = f" (and {len(changed) - limit} more)" if len(changed) > limit else ""
    return ", ".join(changed[:limit]) + more
