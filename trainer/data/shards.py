"""Reading shard files of either format, and checking a shard set before any training time is spent.

Both formats yield the same `Sample`s in the same (written) order, so the training stream does not depend on the
format. Any failure while reading names the shard file.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import webdataset as wds

from ifcn.pipeline.errors import InputError
from ifcn.pipeline.formats import format_of_path
from ifcn.pipeline.formats.hdf5 import HDF5Format
from ifcn.pipeline.manifest import ShardSet
from ifcn.pipeline.records import Sample
from ifcn.pipeline.resume import file_sha256

TASKS = ("interactive", "semantic")
_FIX = "rerun `ifcn-prep sample` with the same options to rewrite it"


@dataclass(frozen=True)
class ShardInfo:
    """A shard file and how many training items it holds for the task ((object, pair)s or images)."""

    path: Path
    items: int


def _webdataset_samples(path: Path) -> Iterator[Sample]:
    # One pipeline per shard: splitting and shuffling are the trainer's (seeded) job, not webdataset's.
    pipeline = wds.WebDataset(str(path), shardshuffle=False, nodesplitter=None, workersplitter=None, empty_check=False)
    for raw in pipeline:
        yield Sample.from_fields(raw["__key__"], raw)


_READERS = {"webdataset": _webdataset_samples, "hdf5": HDF5Format().read}


def read_samples(path: Path) -> Iterator[Sample]:
    """The samples of one shard in written order; a read or decode failure becomes an `InputError` naming the file."""
    path = Path(path)
    try:
        reader = _READERS[format_of_path(path).name]
    except ValueError as e:
        raise InputError(path, str(e).split(": ", 1)[-1], "pass shard files written by `ifcn-prep sample`") from None
    try:
        yield from reader(path)
    except InputError:
        raise
    except Exception as e:  # tar, HDF5, JSON and KeyError failures all mean a corrupt or foreign shard
        raise InputError(path, f"unreadable or corrupt shard ({type(e).__name__}: {e})", _FIX,
                         kind="corrupt_shard") from e


def items_in(sample: Sample, task: str) -> int:
    """Training items of one image: its (object, pair)s (interactive) or the image itself (semantic)."""
    return sample.clicks.num_pairs if task == "interactive" else 1


def _check_entry_file(path: Path, expected_bytes: int, expected_sha: str, verify_checksums: bool) -> None:
    size = path.stat().st_size
    if size != expected_bytes:
        raise InputError(path, f"corrupt or truncated shard: {size} bytes, the manifest records {expected_bytes}", _FIX,
                         kind="corrupt_shard")
    if verify_checksums and file_sha256(path)[0] != expected_sha:
        raise InputError(path, "corrupt shard: its sha256 differs from the manifest's", _FIX, kind="corrupt_shard")


def check_shards(shards: ShardSet, task: str, *, verify_checksums: bool = False, what: str = "--shards",
                 min_shards: int = 1) -> tuple[ShardInfo, ...]:
    """Check that `shards` can feed `task` and count each shard's items; raise `InputError` otherwise.

    With a manifest: every file has the recorded size (and sha256 with `verify_checksums`), its first sample decodes,
    and the item counts come from the manifest. Without one (a brace pattern) every shard is read once to count.
    `min_shards` is the number of shards that must hold items (one per DDP rank: each reads a disjoint share).
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {TASKS}")
    infos: list[ShardInfo] = []
    if shards.manifest is not None:
        for path, entry in zip(shards.paths, shards.manifest.shards, strict=True):
            _check_entry_file(path, entry.bytes, entry.sha256, verify_checksums)
            first = next(read_samples(path), None)
            if first is None and entry.samples:
                raise InputError(path, f"holds no sample, the manifest records {entry.samples}", _FIX,
                                 kind="corrupt_shard")
            infos.append(ShardInfo(path, entry.pairs if task == "interactive" else entry.samples))
    else:
        infos = [ShardInfo(path, sum(items_in(s, task) for s in read_samples(path))) for path in shards.paths]
    total = sum(i.items for i in infos)
    where = shards.paths[0].parent
    if task == "interactive" and total == 0:
        raise InputError(where, f"{what} hold no click pairs, which the interactive task trains on",
                         "sample clicks with `ifcn-prep sample --pairs N` (N ≥ 1), or train with --task semantic",
                         kind="no_pairs")
    if total == 0:
        raise InputError(where, f"{what} hold no images", "point the option at a non-empty shard set", kind="empty")
    useful = sum(1 for i in infos if i.items)
    if useful < min_shards:
        raise InputError(where, f"{what}: {useful} shard(s) hold training items, fewer than the {min_shards} ranks "
                         "that each need a disjoint share", "write more, smaller shards (`ifcn-prep sample "
                         "--images-per-shard`) or use fewer ranks", kind="too_few_shards")
    return tuple(infos)
