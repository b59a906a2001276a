"""A full disk (or exceeded quota) while writing an output file, as one clear line instead of a traceback.

Writes go through atomic temporaries (`ifcn.io`), so a write that fails for lack of space leaves the previous
version of the file intact; the error only has to say which file, how much space it needed and what to do.
"""

from __future__ import annotations

import errno
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def megabytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


class DiskFullError(OSError):
    """No space left while writing `path`. The message names the path, the space the write needed and what is free."""

    def __init__(self, path: Path | str, needed: int | None, free: int | None, fix: str):
        self.path, self.needed, self.free = str(path), needed, free
        need = f"needs {megabytes(needed)}" if needed is not None else "needs more space"
        have = f", {megabytes(free)} free" if free is not None else ""
        super().__init__(f"{path}: no space left on device ({need}{have}); the files already written are intact. "
                         f"Fix: {fix}")


def free_bytes(path: Path) -> int | None:
    """Free bytes on the file system holding `path` (or its nearest existing parent), None if unknown."""
    for folder in (Path(path), *Path(path).parents):
        if folder.exists():
            try:
                return shutil.disk_usage(folder).free
            except OSError:
                return None
    return None


@contextmanager
def disk_full_guard(path: Path | str, needed: int | None = None,
                    fix: str = "free some space (or write elsewhere), then rerun") -> Iterator[None]:
    """Turn ENOSPC/EDQUOT raised inside the block while writing `path` (`needed` bytes) into a `DiskFullError`."""
    try:
        yield
    except DiskFullError:
        raise
    except OSError as e:
        if e.errno not in NO_SPACE:
            raise
        raise DiskFullError(path, needed, free_bytes(Path(path).parent), fix) from None
