"""`--overwrite` without ever losing the old dataset: the new one is built beside it and swapped in when complete.

A job that replaces another job's result writes into `OUT/.ifcn-staging/` (its own job file, sidecars, shards and
finally its manifest). Until that manifest exists, `OUT` still holds the old dataset, untouched: a corrupt image, a
full disk, Ctrl-C or `kill -9` leaves it as it was (a rerun of the same command resumes in the staging folder). Then
the swap: a journal `OUT/.ifcn-replace.json` lists the old run's entries; they move into `OUT/.ifcn-replaced/`, the
staged entries move into `OUT` (the manifest last), and the old entries are deleted. Every step is a rename within
one file system, and the journal makes the swap restartable: a run killed half-way through it is finished by the
next run on the folder before anything else happens. Entries no run recorded (the user's files) are never moved.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ifcn.io import atomic_write_bytes, canonical_json, temporary_target
from ifcn.lock import LOCK_NAME
from ifcn.pipeline.prep_resume import previous_record, recorded_names
from ifcn.shards.manifest import MANIFEST_NAME

STAGING_DIR = ".ifcn-staging"
ASIDE_DIR = ".ifcn-replaced"
JOURNAL = ".ifcn-replace.json"
#: Entries of an output folder that belong to a replacement in progress.
REPLACE_ENTRIES = (STAGING_DIR, ASIDE_DIR, JOURNAL)


def staging_folder(out: Path, record: dict[str, Any], log: Callable[[str], None]) -> Path:
    """The folder a job that replaces `out`'s dataset writes into: `out/.ifcn-staging`, kept when an interrupted run
    of the same job left it there (so that it resumes), emptied when another job's unfinished replacement did."""
    staging = out / STAGING_DIR
    if staging.exists() and previous_record(staging) != record:
        log(f"{out}: discarding an unfinished --overwrite run of other parameters ({staging})")
        shutil.rmtree(staging)
    return staging


def old_entries(out: Path) -> list[str]:
    """The entries of `out` that the swap replaces: what an earlier run recorded, and temporaries of those names."""
    recorded = recorded_names(out) - {LOCK_NAME}
    return sorted(p.name for p in out.iterdir() if p.name in recorded or temporary_target(p.name) in recorded)


def commit(out: Path, staging: Path) -> None:
    """Swap the complete dataset in `staging` (its manifest written) into `out`, replacing the old run's entries."""
    atomic_write_bytes(out / JOURNAL, canonical_json({"old": old_entries(out), "staging": staging.name}))
    _roll_forward(out)


def finish_interrupted_swap(out: Path) -> bool:
    """Complete a swap that a killed run left half done (its journal is still there); return whether there was one."""
    if not (out / JOURNAL).is_file():
        return False
    _roll_forward(out)
    return True


def _roll_forward(out: Path) -> None:
    """Do what is left of the swap journaled in `out`. Restartable at any point: an old entry is moved aside only while
    it is still in `out` and not yet aside (every old entry is aside before the first staged one moves in)."""
    journal = json.loads((out / JOURNAL).read_text())
    aside, staging = out / ASIDE_DIR, out / journal["staging"]
    aside.mkdir(exist_ok=True)
    for name in journal["old"]:
        if (out / name).exists() and not (aside / name).exists():
            os.replace(out / name, aside / name)
    if staging.is_dir():
        for entry in sorted(staging.iterdir(), key=lambda p: p.name == MANIFEST_NAME):  # the manifest last
            os.replace(entry, out / entry.name)
        staging.rmdir()
    shutil.rmtree(aside)
    (out / JOURNAL).unlink()
