"""The one error type for bad input data: it names the offending file, what is wrong with it and how to fix it.

The pipeline's `--on-error` policy depends on it: `fail` stops with `str(error)`, `skip` records the image's key,
`path`, `kind` and `reason` in the manifest and goes on. Everything else (bugs, full disks) is not an `InputError`
and always stops the run; a full disk stops it with a `DiskFullError`, one line that says how much space is needed.
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path


class InputError(ValueError):
    """A problem with the user's input files (or shards, local or remote). Message: "PATH: REASON. Fix: FIX".

    `kind` is a short stable code (for example `corrupt_jpeg`) so that skipped images can be counted by cause;
    `key` is the image id the problem belongs to, when there is one.
    """

    def __init__(self, path: Path | str, reason: str, fix: str, *, kind: str = "bad_input", key: str | None = None):
        self.path = str(path)  # a string, not a Path: a URL (`https://host/x.tar`) must not lose a slash
        self.reason = reason
        self.fix = fix
        self.kind = kind
        self.key = key
        super().__init__(f"{self.path}: {reason}. Fix: {fix}")

    def __reduce__(self):  # keep all attributes when the error crosses a process boundary (Dask workers)
        return (_rebuild, (self.path, self.reason, self.fix, self.kind, self.key))


def _rebuild(path: str, reason: str, fix: str, kind: str, key: str | None) -> InputError:
    return InputError(path, reason, fix, kind=kind, key=key)


#: The errno values of a full disk (no space left, or the user's quota used up).
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def is_disk_full(error: BaseException) -> bool:
    """Whether `error` says the disk (or the quota) is full."""
    return isinstance(error, OSError) and error.errno in DISK_FULL_ERRNOS


class DiskFullError(OSError):
    """A full disk, as one line: the folder, about how much more space the job needs, how much is free, the fix.

    An `OSError` (errno ENOSPC) so that callers that stop on OS errors stop on it too; its text is the message alone.
    """

    def __init__(self, folder: Path | str, needed: int, fix: str):
        self.folder = str(folder)
        self.needed = needed
        self.free = _free_bytes(Path(folder))
        super().__init__(f"{self.folder}: the disk is full (no space left on device); about {_mb(needed)} more are "
                         f"needed, {_mb(self.free)} are free. Fix: {fix}")
        self.errno = errno.ENOSPC


def _free_bytes(path: Path) -> int:
    existing = next((p for p in (path, *path.parents) if p.exists()), Path("/"))
    return shutil.disk_usage(existing).free


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"
