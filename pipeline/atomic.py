"""Atomic file creation: write under a temporary name in the target folder, fsync, then rename.

A reader (or a resumed run) therefore sees either no file or a complete one under a final name, never a partial one.
Temporary names start with `.tmp-` so that `cleanup_temporaries` can remove what an interrupted run left.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TMP_PREFIX = ".tmp-"


@contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path next to `final`; on success it is fsynced and renamed to `final`, on error removed."""
    final = Path(final)
    tmp = final.with_name(f"{TMP_PREFIX}{final.name}.{uuid.uuid4().hex[:8]}")
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


def cleanup_temporaries(folder: Path) -> list[Path]:
    """Remove temporary files an interrupted run left in `folder`; return what was removed."""
    removed = [p for p in Path(folder).glob(f"{TMP_PREFIX}*") if p.is_file()]
    for p in removed:
        p.unlink(missing_ok=True)
    return removed
