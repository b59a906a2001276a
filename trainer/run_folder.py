"""Claiming a run folder without losing anything in it.

A run never deletes or overwrites a file it did not write itself: a folder that holds another run's files (even
only `best.pt`, after the large `last.pt` was deleted to save space) is refused unless the run continues it
(`--resume`) or the user asks for `--overwrite`, which MOVES those files into `RUN/previous-<UTC time>/`. The only
files ever deleted are this tool's own temporaries, recognised by their exact name: `.tmp-<run file>.<8 hex>`, what
`ifcn.io.atomic_path` leaves when a save is killed. The user's other files are never touched.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from ifcn.io import remove_own_temporaries
from ifcn.trainer.config import SetupError
from ifcn.trainer.core.names import BEST, LAST
from ifcn.trainer.run_files import RUN_FILES

PREVIOUS = "previous-"


def run_files_in(folder: Path) -> list[str]:
    """The names of `RUN_FILES` present in `folder`."""
    return [name for name in RUN_FILES if (Path(folder) / name).exists()]


def move_aside(folder: Path, names: list[str]) -> Path:
    """Move `names` of `folder` into a new `folder/previous-<UTC time>[-n]/` and return it."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    dest = folder / f"{PREVIOUS}{stamp}"
    n = 1
    while dest.exists():
        n += 1
        dest = folder / f"{PREVIOUS}{stamp}-{n}"
    dest.mkdir()
    for name in names:
        (folder / name).rename(dest / name)
    return dest


def check_run_folder(run_dir: Path, *, resume: bool, overwrite: bool) -> list[str]:
    """Whether `run_dir` can serve this run as asked, changing nothing: raises `SetupError` if not; returns the
    previous run's files that `claim_run_folder` will move aside (`overwrite`)."""
    run_dir = Path(run_dir)
    present = run_files_in(run_dir)
    if resume and LAST not in present:
        hint = (f"; it holds {BEST}: to start a new run from that model, pass --init-from {run_dir / BEST} with "
                "another --out" if BEST in present else "")
        raise SetupError(f"--resume: {run_dir / LAST} does not exist{hint}. Start the run without --resume (or "
                         "check --out)")
    if resume or not present:
        return []
    if not overwrite:
        raise SetupError(f"--out {run_dir} already holds a run ({', '.join(present)}); pass --resume to continue "
                         f"it, --overwrite to move its files into {run_dir}/{PREVIOUS}<time>/ and start afresh, or "
                         "choose another --out")
    return present


def claim_run_folder(run_dir: Path, previous: list[str]) -> Path | None:
    """Make `run_dir` ready (holding its lock, on the writing rank, after every other check passed): move the
    `previous` run's files aside, remove this tool's own temporaries. Returns where the files went, if anywhere."""
    moved = move_aside(Path(run_dir), previous) if previous else None
    remove_own_temporaries(run_dir, RUN_FILES)  # a save killed half-way leaves only a temporary, never a bad last.pt
    return moved
