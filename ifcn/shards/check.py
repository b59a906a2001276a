"""Checking a shard set before any training or evaluation time is spent on it, and counting its items per task."""

from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from ifcn.errors import InputError
from ifcn.io import file_sha256
from ifcn.shards.manifest import ShardEntry, ShardSet
from ifcn.shards.reader import REWRITE, is_remote, read_shard
from ifcn.shards.records import Sample

TASKS = ("interactive", "semantic")


@dataclass(frozen=True)
class ShardInfo:
    """A shard (local path or URL) and how many training items it holds for the task ((object, pair)s or images)."""

    location: str
    items: int


def items_in(sample: Sample, task: str) -> int:
    """Training items of one image: its (object, pair)s (interactive) or the image itself (semantic)."""
    return sample.clicks.num_pairs if task == "interactive" else 1


def check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {TASKS}")


def _check_entry(location: str, entry: ShardEntry, verify_checksums: bool) -> None:
    """A local shard has its recorded size (and sha256 with `verify_checksums`); any shard's first sample reads."""
    if not is_remote(location):
        sha256, size = file_sha256(location) if verify_checksums else (None, Path(location).stat().st_size)
        if size != entry.bytes:
            raise InputError(location, f"corrupt or truncated shard: {size} bytes, the manifest records {entry.bytes}",
                             REWRITE, kind="corrupt_shard")
        if sha256 is not None and sha256 != entry.sha256:
            raise InputError(location, "corrupt shard: its sha256 differs from the manifest's", REWRITE,
                             kind="corrupt_shard")
    with closing(read_shard(location)) as samples:
        empty = next(samples, None) is None
    if entry.samples and empty:
        raise InputError(location, f"holds no sample, the manifest records {entry.samples}", REWRITE,
                         kind="corrupt_shard")


def check_shards(shards: ShardSet, task: str, *, verify_checksums: bool = False, what: str = "--shards",
                 min_shards: int = 1) -> tuple[ShardInfo, ...]:
    """Check that `shards` can feed `task` and count each shard's items; raise `InputError` otherwise.

    With a manifest: every local file has the recorded size (and sha256 with `verify_checksums`), every shard's first
    sample reads, and the item counts come from the manifest. Without one (a pattern) every shard is read once to
    count. Every sample read later is checked against its own digest, so corruption is caught before it is used.
    `min_shards` is the number of shards that must hold items (one per DDP rank: each reads a disjoint share).
    """
    check_task(task)
    infos: list[ShardInfo] = []
    if shards.manifest is not None:
        for location, entry in zip(shards.locations, shards.manifest.shards, strict=True):
            _check_entry(location, entry, verify_checksums)
            infos.append(ShardInfo(location, entry.pairs if task == "interactive" else entry.samples))
    else:
        infos = [ShardInfo(loc, sum(items_in(s, task) for s in read_shard(loc))) for loc in shards.locations]
    total = sum(i.items for i in infos)
    if task == "interactive" and total == 0:
        raise InputError(shards.where, f"{what} hold no click pairs, which the interactive task trains on",
                         "sample clicks with `ifcn-prep sample --pairs N` (N ≥ 1), or train with --task semantic",
                         kind="no_pairs")
    if total == 0:
        raise InputError(shards.where, f"{what} hold no images", "point the option at a non-empty shard set",
                         kind="empty")
    useful = sum(1 for i in infos if i.items)
    if useful < min_shards:
        raise InputError(shards.where, f"{what}: {useful} shard(s) hold training items, fewer than the {min_shards} "
                         "ranks that each need a disjoint share", "write more, smaller shards (`ifcn-prep sample "
                         "--images-per-shard`) or use fewer ranks", kind="too_few_shards")
    return tuple(infos)
