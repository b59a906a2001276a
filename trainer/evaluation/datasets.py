"""The datasets of a multi-dataset NoC run: `--shards [NAME=]LOCATION`, each resolved and given a row name.

A row is named by `NAME=` when given, else by the source the manifest records, else by the folder that holds the
shards (`shards/grabcut` -> `grabcut`; a manifest file or a shard pattern -> its folder). Names become report
sub-folders, so they must be plain and distinct.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

from ifcn.shards.formats import FORMATS
from ifcn.shards.manifest import Manifest, ShardSet, resolve_shards
from ifcn.shards.reader import is_remote

#: A dataset name: what `NAME=` may be, and what a name must be to become a report folder.
_NAME = re.compile(r"[A-Za-z0-9][\w.+-]*")
#: A last path component that names shard files rather than their folder (a manifest, a shard of a registered
#: format, a pattern).
_FILE_LIKE = re.compile(r".*(" + "|".join(re.escape(s) for s in (".json", *(f.suffix for f in FORMATS.values())))
                        + r"|[{}*?\[\]].*)$")


@dataclass(frozen=True)
class EvalDataset:
    """One dataset to evaluate: its row name, the `--shards` location as given, and the resolved shards."""

    name: str
    location: str
    shards: ShardSet


def split_name(value: str) -> tuple[str | None, str]:
    """`NAME=LOCATION` -> (NAME, LOCATION); a plain location -> (None, location).

    A value that exists as a local path is always a location (a folder may contain '='); otherwise the text before
    the first '=' is a name when it looks like one (URLs such as `http://h/x?a=b` do not).
    """
    if "=" not in value or Path(value).exists():
        return None, value
    name, location = value.split("=", 1)
    return (name, location) if _NAME.fullmatch(name) else (None, value)


def source_name(manifest: Manifest | None) -> str | None:
    """The source a manifest records (`voc`, `grabcut`, ...), when its schema has one."""
    source = getattr(manifest, "source", None)
    name = getattr(source, "name", None)
    return name if isinstance(name, str) and _NAME.fullmatch(name) else None


def folder_name(location: str) -> str:
    """The name of the folder that holds the shards of `location` (a folder, manifest, pattern or URL; for a `pipe:`
    command, of its last argument with a '/')."""
    if location.startswith("pipe:"):
        paths = [word for word in location[len("pipe:"):].split() if "/" in word]
        return folder_name(paths[-1]) if paths else "pipe"
    path = PurePosixPath(urlparse(location).path if is_remote(location) else Path(location).as_posix())
    parts = [p for p in path.parts if p not in ("/", ".")]
    if parts and _FILE_LIKE.fullmatch(parts[-1]):
        parts.pop()
    name = parts[-1] if parts else Path.cwd().name
    return re.sub(r"[^\w.+-]", "_", name).lstrip("_.+-") or "shards"


def resolve_datasets(values: Sequence[str | Path]) -> tuple[EvalDataset, ...]:
    """Resolve every `--shards` value; refuse names that are not plain or that repeat."""
    if not values:
        raise ValueError("give at least one --shards")
    datasets = []
    for value in values:
        name, location = split_name(str(value))
        shards = resolve_shards(location)
        datasets.append(EvalDataset(name or source_name(shards.manifest) or folder_name(location), location, shards))
    names = [d.name for d in datasets]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"several --shards get the row name {', '.join(repeated)}; name each one, e.g. "
                         f"--shards {repeated[0]}-a=LOCATION")
    return tuple(datasets)
