"""Claiming a run folder without losing anything in it.

A run never deletes or overwrites a file it did not write itself: a folder that holds another run's files (even
only `best.pt`, after the large `last.pt` was deleted to save space) is refused unless the run continues it
(`--resume`) or the user asks for `--overwrite`, which MOVES those files into `RUN/previous-<UTC time>/`. The only
files ever deleted are this tool's own temporaries, recognised by their exact name: `.tmp-<run file>.<8 hex>`, what
`ifcn.io.atomic_path` leaves when a save is killed. The user's other files are never touched.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

from ifcn.io import remove_own_temporaries
from ifcn.outputs import PREVIOUS, OutputRefused, check_outputs, move_aside
from ifcn.trainer.core.names import BEST, LAST
from ifcn.trainer.run_files import RUN_FILES
from ifcn.trainer.train_config import SetupError


def _run_file(_path: Path) -> bool:
    """Every name of `RUN_FILES` is a run's own (another run's files are moved aside, never replaced)."""
    return True


def run_files_in(folder: Path) -> list[str]:
    """The names of `RUN_FILES` present in `folder`."""
    return [name for name in RUN_FILES if (Path(folder) / name).exists()]


def check_run_folder(run_dir: Path, *, resume: bool, overwrite: bool, inputs: Iterable[Path | str] = ()) -> list[str]:
    """Whether `run_dir` can serve this run as asked, changing nothing: raises `SetupError` if not; returns the
    previous run's files that `claim_run_folder` will move aside (`overwrite`). A new run refuses a folder where
    one of its `inputs` (shards, starting weights, a stored config) is one of the files it writes or moves aside."""
    run_dir = Path(run_dir)
    if not resume:
        try:
            check_outputs([run_dir / name for name in RUN_FILES], flag="--out", inputs=inputs, ours=_run_file)
        except OutputRefused as e:
            raise SetupError(str(e)) from None
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


def forget_unfinished_start(run_dir: Path) -> None:
    """After a new run that stopped before its first checkpoint (bad settings found late, a full disk, Ctrl-C):
    remove the files it wrote (config.json, metrics, curves, TensorBoard events), so the folder is as before and the
    same command can simply be run again. A run that saved `last.pt` keeps everything, to be resumed."""
    run_dir = Path(run_dir)
    if (run_dir / LAST).exists():
        return
    for name in RUN_FILES:
        path = run_dir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
