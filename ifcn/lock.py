"""One writer per output folder: an exclusive `fcntl.flock` on `FOLDER/.ifcn.lock`, shared by every tool.

Two processes writing the same folder (two `ifcn-train --out RUN`, two `ifcn-prep sample --out DIR`) would interleave
or delete each other's files, so the second one is refused with a message naming the first (pid, host, start time,
command line, read from the lock file). The lock belongs to the open file, so the operating system releases it when
its holder dies, even by `kill -9`: a dead process never leaves a stale lock. The holder removes the file when it
finishes; a file left by a killed holder is simply taken over. Local file systems only (flock over NFS depends on
the mount).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

#: The lock file's name in the locked folder (tools that list a folder's files should expect it while a run is live).
LOCK_NAME = ".ifcn.lock"


class FolderLockedError(ValueError):
    """Another live process holds the folder's lock; the message names it."""


def _holder_record(what: str) -> bytes:
    return json.dumps({"what": what, "pid": os.getpid(), "host": socket.gethostname(),
                       "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                       "command": " ".join(sys.argv)}).encode()


def describe_holder(raw: bytes) -> str:
    """`what (pid P on host H, started T, command: C)` from a lock file's content; tolerant of a half-written one."""
    try:
        h = json.loads(raw)
        return (f"{h['what']} (pid {h['pid']} on host {h['host']}, started {h['started']}, "
                f"command: {h['command']})")
    except (ValueError, KeyError, TypeError):
        return "another process (it has not yet recorded who it is)"


def _open_locked(path: Path, what: str) -> int:
    """Open and lock `path`, retrying when the file was replaced between open and lock (a holder that just finished
    removes it: the lock would then be on a file nobody else sees)."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = describe_holder(os.pread(fd, 1 << 16, 0))
            os.close(fd)
            raise FolderLockedError(f"{path.parent} is being written by {holder}. Wait for it to finish or stop it "
                                    "(a killed process releases the folder at once), or choose another output "
                                    "folder") from None
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


@contextmanager
def output_lock(folder: Path, what: str) -> Iterator[None]:
    """Hold `folder`'s exclusive lock for the duration of the block (the folder is created if needed).

    `what` names this writer in the message a second writer gets (e.g. `ifcn-train`). Raises `FolderLockedError`
    when another live process holds the lock. Not re-entrant: a second `output_lock` on the same folder inside the
    block is refused too. Folders it had to create are removed again when the block leaves them empty (a command
    refused after taking the lock leaves no empty output folder behind).
    """
    folder = Path(folder)
    created = [p for p in (folder, *folder.parents) if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    try:
        fd = _open_locked(path, what)
    except BaseException:
        _remove_empty(created)
        raise
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, _holder_record(what), 0)
        yield
    finally:
        path.unlink(missing_ok=True)  # while still holding the lock: a waiting opener then retries on a fresh file
        os.close(fd)
        _remove_empty(created)


def _remove_empty(created: list[Path]) -> None:
    """Remove the folders of `created` (innermost first) that are empty; stop at the first that is not."""
    for folder in created:
        try:
            folder.rmdir()
        except OSError:
            return
