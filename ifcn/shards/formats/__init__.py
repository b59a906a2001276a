"""Shard formats, a registry keyed by the `--format` name.

Every format writes a sequence of `Sample`s to one file and reads them back in the same order. Writers write to
the exact path they are given: making that a temporary name and renaming it is the orchestrator's job. Readers take
a location (a local path or, where the format allows, a URL) and yield raw `(key, fields)` records, from the first
sample or from a position that `scan` (local files: headers and clicks only) reported; turning them into checked
`Sample`s, with errors that name the shard, is `ifcn.shards.reader`'s job.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Protocol

from ifcn.shards.records import Sample

#: A sample as a reader finds it: its key and its fields' bytes.
RawSample = tuple[str, dict[str, bytes]]


class ShardFormat(Protocol):
    """What a shard format provides."""

    name: str
    suffix: str
    #: Whether `read` takes URLs (`http(s)://`, `pipe:`) besides local paths.
    remote: bool

    def write(self, path: Path, samples: Iterable[Sample]) -> int:
        """Write `samples` to `path` in order, byte-deterministically; return the number written."""

    def read(self, location: str, start: int = 0) -> Iterator[RawSample]:
        """Yield the raw samples of the shard at `location` in the order they were written, from `start`: 0 (the
        first sample) or, for a local file, a position `scan` reported (reading from there costs no more)."""

    def scan(self, location: str) -> Iterator[tuple[int, str, bytes]]:
        """(position, key, clicks JSON) of each sample of a local shard, without reading its images and masks."""


def _registry() -> dict[str, ShardFormat]:
    from ifcn.shards.formats.hdf5 import HDF5Format
    from ifcn.shards.formats.webdataset import WebDatasetFormat

    return {f.name: f for f in (WebDatasetFormat(), HDF5Format())}


FORMATS: dict[str, ShardFormat] = _registry()


def get_format(name: str) -> ShardFormat:
    """The format registered as `name`, with an error that lists the known ones."""
    try:
        return FORMATS[name]
    except KeyError:
        raise ValueError(f"unknown shard format {name!r}; choose one of {sorted(FORMATS)}") from None


def format_of_path(location: str | Path) -> ShardFormat:
    """The format whose file suffix the location's file name has; for a `pipe:` command, the first word that ends
    with a known suffix (`pipe:aws s3 cp s3://bucket/train-000000.tar -`)."""
    text = str(location)
    for word in reversed(text.split()):
        for fmt in FORMATS.values():
            if word.endswith(fmt.suffix):
                return fmt
    raise ValueError(f"{text}: not a shard file (expected one of the suffixes {[f.suffix for f in FORMATS.values()]})")
