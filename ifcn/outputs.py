"""Where a command may write: an output never replaces one of the command's inputs or a file this tool did not write.

Every command that writes files (`ifcn-eval predict`, `export`, `noc`/`miou --out`, `ifcn-prep inspect --out`,
`ifcn-train --out`) checks its output paths with `check_outputs` before it does any work, so `--out photos` over the
photos being segmented, `--out ck.pt` over the checkpoint being exported or `inspect --out` over a shard stops with
one line instead of destroying the input. Report folders written again are refused, or their old files moved aside with
`move_aside` (never deleted), as the trainer does with run folders.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path

#: The folder `move_aside` moves earlier files into: `previous-<UTC time>[-n]/`.
PREVIOUS = "previous-"


class OutputRefused(ValueError):
    """An output path that would replace an input or a file this tool did not write; the message names both."""


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):  # either is missing or unreadable: they cannot be the same existing file
        return False


def _never(_path: Path) -> bool:
    return False


def check_outputs(outputs: Iterable[Path], *, flag: str, inputs: Iterable[Path | str] = (),
                  ours: Callable[[Path], bool] = _never) -> None:
    """Raise `OutputRefused` when one of `outputs` exists and is one of `inputs` (the same file, through any link or
    spelling), or is a file that `ours` does not recognise as written by this tool. `flag` names the option that
    chose the outputs (`--out`), for the message. Changes nothing."""
    local = [Path(i) for i in inputs if i and "://" not in str(i) and not str(i).startswith("pipe:")]
    for out in map(Path, outputs):
        if not os.path.lexists(out):
            continue
        source = next((i for i in local if _same_file(out, i)), None)
        if source is not None:
            raise OutputRefused(f"{flag} {out}: that is the input {source}, which writing would replace. Fix: choose "
                                f"another {flag}")
        if not ours(out):
            kind = "a folder" if out.is_dir() else "a file this tool did not write"
            raise OutputRefused(f"{flag} {out}: {kind} is there, which writing would replace. Fix: choose another "
                                f"{flag}, or move it away first")


def move_aside(folder: Path, names: Iterable[str]) -> Path:
    """Move `names` of `folder` into a new `folder/previous-<UTC time>[-n]/` and return it."""
    folder = Path(folder)
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


def earlier_report(out: Path, names: Iterable[str], *, overwrite: bool, flag: str = "--out") -> list[str]:
    """The files of an earlier report among `names` in `out`, which the caller moves aside (`move_aside`) before it
    writes; without `overwrite`, a folder holding any of them is refused. Changes nothing."""
    out = Path(out)
    present = [name for name in names if os.path.lexists(out / name)]
    if present and not overwrite:
        raise OutputRefused(f"{flag} {out} already holds a report ({', '.join(present)}). Fix: choose another {flag}, "
                            f"or pass --overwrite to move those files into {out}/{PREVIOUS}<time>/")
    return present
