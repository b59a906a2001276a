"""Module names of the installed package: no two modules share a file name, so a name in a traceback, an import or
the README's module map points at one module."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import ifcn
import ifcn.pipeline
import ifcn.trainer


def module_files() -> list[Path]:
    """Every module file of the installed `ifcn` package (an editable install maps its three source folders)."""
    roots = [Path(p) for package in (ifcn, ifcn.pipeline, ifcn.trainer) for p in package.__path__]
    return sorted({f.resolve() for root in roots for f in root.rglob("*.py") if f.name != "__init__.py"})


def test_no_two_modules_of_the_package_share_a_file_name() -> None:
    by_name: dict[str, list[str]] = defaultdict(list)
    for path in module_files():
        by_name[path.name].append(str(path))
    shared = {name: paths for name, paths in by_name.items() if len(paths) > 1}
    assert not shared, f"modules sharing a name: {shared}"


def test_the_walk_sees_the_three_source_folders() -> None:
    names = {p.name for p in module_files()}
    assert {"prep_cli.py", "train_cli.py", "eval_cli.py", "predictor.py", "predictor_protocol.py"} <= names
