"""Checking a shard set before any training or evaluation time is spent on it, and counting its items per task."""

from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from ifcn.errors import InputError
from ifcn.io import file_sha256
from ifcn.shards.counts import ShardCounts, check_counts
from ifcn.shards.manifest import ShardEntry, ShardSet
from ifcn.shards.reader import REWRITE, is_remote, read_shard
from ifcn.shards.slices import ShardIndex, index_shard

TASKS = ("interactive", "semantic")


@dataclass(frozen=True)
class ShardInfo:
    """A shard (local path or URL), how many training items it holds for the task ((object, pair)s or images), and
    its index when it is a local file (see `ifcn.shards.slices`)."""

    location: str
    items: int
    index: ShardIndex | None = None


def check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {TASKS}")


def _first_sample_reads(location: str, samples: int, check_digest: bool) -> None:
    with closing(read_shard(location, check_digest=check_digest)) as reader:
        empty = next(reader, None) is None
    if samples and empty:
        raise InputError(location, f"holds no sample, the manifest records {samples}", REWRITE, kind="corrupt_shard")


def _check_entry(location: str, entry: ShardEntry, task: str, verify_checksums: bool,
                 check_digest: bool) -> ShardInfo:
    """A local shard has its recorded size (and sha256 with `verify_checksums`) and, by its index, the recorded
    counts; any shard's first sample reads. Items come from the manifest (checked, for a local shard)."""
    index = None
    if not is_remote(location):
        sha256, size = file_sha256(location) if verify_checksums else (None, Path(location).stat().st_size)
        if size != entry.bytes:
            raise InputError(location, f"corrupt or truncated shard: {size} bytes, the manifest records {entry.bytes}",
                             REWRITE, kind="corrupt_shard")
        if sha256 is not None and sha256 != entry.sha256:
            raise InputError(location, "corrupt shard: its sha256 differs from the manifest's", REWRITE,
                             kind="corrupt_shard")
        index = index_shard(location, task)
        check_counts(location, index.counts, entry)
    _first_sample_reads(location, entry.samples, check_digest)
    return ShardInfo(location, ShardCounts.of(entry).items(task), index)


def _count(location: str, task: str, check_digest: bool) -> ShardInfo:
    """Without a manifest: index a local shard; read a remote one through to count its items."""
    if not is_remote(location):
        index = index_shard(location, task)
        _first_sample_reads(location, index.counts.samples, check_digest)
        return ShardInfo(location, index.items, index)
    counts = ShardCounts()
    for sample in read_shard(location, check_digest=check_digest):
        counts = counts.add(sample.clicks)
    return ShardInfo(location, counts.items(task))


def check_shards(shards: ShardSet, task: str, *, verify_checksums: bool = False, check_digest: bool = True,
                 what: str = "--shards") -> tuple[ShardInfo, ...]:
    """Check that `shards` can feed `task` and count each shard's items; raise `InputError` otherwise.

    With a manifest: every local file has the recorded size (and sha256 with `verify_checksums`) and holds the
    recorded samples, objects and pairs (its index is read: tar headers and clicks only), every shard's first sample
    reads, and the item counts come from the manifest (a remote shard's are checked while it streams). Without one
    (a pattern) local shards are indexed and remote ones read once to count. Every sample read later is checked
    against its own digest (unless `check_digest` is off), so corruption is caught before it is used.
    """
    check_task(task)
    if shards.manifest is not None:
        infos = [_check_entry(location, entry, task, verify_checksums, check_digest)
                 for location, entry in zip(shards.locations, shards.manifest.shards, strict=True)]
    else:
        infos = [_count(location, task, check_digest) for location in shards.locations]
    total = sum(i.items for i in infos)
    if task == "interactive" and total == 0:
        raise InputError(shards.where, f"{what} hold no click pairs, which the interactive task trains on",
                         "sample clicks with `ifcn-prep sample --pairs N` (N ≥ 1), or train with --task semantic",
                         kind="no_pairs")
    if total == 0:
        raise InputError(shards.where, f"{what} hold no images", "point the option at a non-empty shard set",
                         kind="empty")
    return tuple(infos)
