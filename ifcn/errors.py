"""The one error type for bad input data: it names the offending file, what is wrong with it and how to fix it.

The pipeline's `--on-error` policy depends on it: `fail` stops with `str(error)`, `skip` records the image's key,
`path`, `kind` and `reason` in the manifest and goes on. Everything else (bugs, full disks) is not an `InputError`
and always stops the run; a full disk stops it with a `DiskFullError`, one line that says how much space is needed.
"""

from __future__ import annotations

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

