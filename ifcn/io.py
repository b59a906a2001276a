"""Small file helpers shared by every tool: atomic writes, sha256 of files, canonical JSON.

Atomic creation writes under a temporary name in the target folder, fsyncs, then renames, so a reader (or a resumed
run) sees either no file or a complete one under its final name, never a partial one. Temporary names start with
`.tmp-` and end with 8 random hex digits, so `remove_own_temporaries` can tell a tool's own leftovers (the temporary
of a file it writes, under that exact pattern) from a user's files.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from collections.abc import Container, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TMP_PREFIX = ".tmp-"
_TEMPORARY = re.compile(re.escape(TMP_PREFIX) + r"(?P<final>.+)\.[0-9a-f]{8}")


def temporary_name(final: Path) -> Path:
    """The temporary sibling `final` is written under: `.tmp-<name>.<8 hex digits>`."""
    return final.with_name(f"{TMP_PREFIX}{final.name}.{uuid.uuid4().hex[:8]}")


def temporary_target(name: str) -> str | None:
    """The final file name that `name` is the temporary of (`.tmp-train-000001.tar.1a2b3c4d` -> `train-000001.tar`),
    or None when `name` is not a temporary name as `temporary_name` makes them."""
    match = _TEMPORARY.fullmatch(name)
    return None if match is None else match["final"]


def remove_own_temporaries(folder: Path, finals: Container[str]) -> list[Path]:
    """Remove from `folder` the temporaries of the files named in `finals` (the files the caller writes there), left by
    a writer that was killed; anything else, a user's `.tmp-holiday.jpg` included, stays. Returns what was removed."""
    removed = [p for p in Path(folder).glob(f"{TMP_PREFIX}*") if temporary_target(p.name) in finals and p.is_file()]
    for p in removed:
        p.unlink(missing_ok=True)
    return removed


@contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path next to `final`; on success it is fsynced and renamed to `final`, on error removed."""
    final = Path(final)
    tmp = temporary_name(final)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(final: Path, data: bytes) -> None:
    """Write `data` to `final` atomically."""
    with atomic_path(final) as tmp:
        tmp.write_bytes(data)


def canonical_json(data: Any) -> bytes:
    """`data` as indented JSON with sorted keys and a final newline: equal data, equal bytes."""
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()


def write_json(final: Path, data: Any) -> None:
    """Write `data` as canonical JSON to `final`, atomically."""
    atomic_write_bytes(Path(final), canonical_json(data))


def file_sha256(path: Path) -> tuple[str, int]:
    """sha256 (hex) and size in bytes of a file, read in 1 MiB blocks."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size
