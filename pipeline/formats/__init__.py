"""Shard formats, a registry keyed by the `--format` name.

Every format writes a sequence of `Sample`s to one file and reads them back in the same order. Writers write to
the exact path they are given: making that a temporary name and renaming it is the orchestrator's job.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Protocol

from ifcn.pipeline.records import Sample


class ShardFormat(Protocol):
    """What a shard format provides."""

    name: str
    suffix: str

    def write(self, path: Path, samples: Iterable[Sample]) -> int:
        """Write `samples` to `path` in order, byte-deterministically; return the number written."""

    def read(self, path: Path) -> Iterator[Sample]:
        """Yield the samples of the shard at `path` in the order they were written."""


def _registry() -> dict[str, ShardFormat]:
    from ifcn.pipeline.formats.hdf5 import HDF5Format
    from ifcn.pipeline.formats.webdataset import WebDatasetFormat

    return {f.name: f for f in (WebDatasetFormat(), HDF5Format())}


FORMATS: dict[str, ShardFormat] = _registry()


def get_format(name: str) -> ShardFormat:
    """The format registered as `name`, with an error that lists the known ones."""
    try:
        return FORMATS[name]
    except KeyError:
        raise ValueError(f"unknown shard format {name!r}; choose one of {sorted(FORMATS)}") from None


def format_of_path(path: Path) -> ShardFormat:
    """The format whose file suffix `path` has."""
    for fmt in FORMATS.values():
        if path.name.endswith(fmt.suffix):
            return fmt
    raise ValueError(f"{path}: not a shard file (expected one of the suffixes {[f.suffix for f in FORMATS.values()]})")
