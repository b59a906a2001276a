"""A full disk (or exceeded quota) while writing output, as one clear line instead of a traceback.

Writes go through atomic temporaries (`ifcn.io`), so a write that fails for lack of space leaves the previous
version of the file intact; the error only has to say where, how much space is needed, what is free and what to do.
Both tools use it: `ifcn-prep` for shards and manifests, `ifcn-train` for checkpoints and run files.
"""

from __future__ import annotations

import errno
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})


def megabytes(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


def is_disk_full(error: BaseException | None) -> bool:
    """Whether `error` says the disk (or the quota) is full."""
    return isinstance(error, OSError) and error.errno in NO_SPACE


def free_bytes(path: Path) -> int | None:
    """Free bytes on the file system holding `path` (or its nearest existing parent), None if unknown."""
    for folder in (Path(path), *Path(path).parents):
        if folder.exists():
            try:
                return shutil.disk_usage(folder).free
            except OSError:
                return None
    return None


class DiskFullError(OSError):
    """No space left while writing at `path` (a file or a folder). The message names the path, the space needed (when
    known) and what is free; an `OSError` with errno ENOSPC, so callers that stop on OS errors stop on it too."""

    def __init__(self, path: Path | str, needed: int | None, fix: str):
        self.path, self.needed, self.free = str(path), needed, free_bytes(Path(path))
        need = f"needs about {megabytes(needed)}" if needed is not None else "needs more space"
        have = f", {megabytes(self.free)} free" if self.free is not None else ""
        super().__init__(f"{path}: no space left on device ({need}{have}); what was written before is intact. "
                         f"Fix: {fix}")
        self.errno = errno.ENOSPC


@contextmanager
def disk_full_guard(path: Path | str, needed: int | None = None,
                    fix: str = "free some space (or write elsewhere), then rerun") -> Iterator[None]:
    """Turn ENOSPC/EDQUOT raised inside the block while writing `path` (`needed` bytes) into a `DiskFullError`."""
    try:
        yield
    except DiskFullError:
        raise
    except OSError as e:
        if not is_disk_full(e):
            raise
        raise DiskFullError(path, needed, fix) from None
