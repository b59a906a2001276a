"""`ifcn.lock.output_lock`: one writer per folder, the second refused with the first named, no stale lock after a
kill -9, and the lock file gone after a clean exit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ifcn.lock import LOCK_NAME, FolderLockedError, output_lock

HOLD = """
import sys, time
from pathlib import Path
from ifcn.lock import output_lock
with output_lock(Path(sys.argv[1]), "holder-tool"):
    print("locked", flush=True)
    time.sleep(60)
"""


def _holder(folder: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_second_writer_is_refused_with_the_holder_named(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    proc = _holder(folder)
    try:
        with pytest.raises(FolderLockedError) as info, output_lock(folder, "me"):
            pass
        message = str(info.value)
        assert f"pid {proc.pid}" in message and "holder-tool" in message and "started" in message
        assert "-c" in message and str(folder) in message  # the command line and the folder
    finally:
        proc.kill()
        proc.wait()


def test_kill_9_leaves_no_stale_lock(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    proc = _holder(folder)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (folder / LOCK_NAME).exists()  # the file stays, the lock does not
    with output_lock(folder, "me"):
        assert f'"pid": {os.getpid()}' in (folder / LOCK_NAME).read_text()
    assert not (folder / LOCK_NAME).exists()


def test_lock_is_not_reentrant_and_is_released_on_error(tmp_path: Path) -> None:
    held = f"first \\(pid {os.getpid()}"
    with output_lock(tmp_path, "first"), pytest.raises(FolderLockedError, match=held), output_lock(tmp_path, "2nd"):
        pass
    with pytest.raises(RuntimeError), output_lock(tmp_path, "raises"):
        raise RuntimeError
    start = time.monotonic()
    with output_lock(tmp_path, "again"):
        pass
    assert time.monotonic() - start < 1 and not (tmp_path / LOCK_NAME).exists()
