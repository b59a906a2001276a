"""What a shard holds (samples, objects, click pairs), and the check that it is what its manifest records.

Readers that trust a manifest's counts (the trainer plans its epochs with them) would repeat or leave out data if the
counts were wrong, so every reader that goes through a whole shard counts what it reads and compares at the end.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import astuple, dataclass

from ifcn.errors import InputError
from ifcn.shards.manifest import ShardEntry, ShardSet
from ifcn.shards.reader import read_shard
from ifcn.shards.records import ImageClicks, Sample

#: The fix when a manifest does not describe its shards: they must be written together.
REWRITE_BOTH = ("the manifest does not describe this shard: write shards and manifest together with `ifcn-prep "
                "sample ... --overwrite` (or restore the shard the manifest was written for)")


def items_of(clicks: ImageClicks, task: str) -> int:
    """Training items of one image: its (object, pair)s (interactive) or the image itself (semantic)."""
    return clicks.num_pairs if task == "interactive" else 1


@dataclass(frozen=True)
class ShardCounts:
    """Samples, kept objects and click pairs of a shard (what its manifest entry records)."""

    samples: int = 0
    objects: int = 0
    pairs: int = 0

    @classmethod
    def of(cls, entry: ShardEntry) -> ShardCounts:
        return cls(entry.samples, entry.objects, entry.pairs)

    def add(self, clicks: ImageClicks) -> ShardCounts:
        return ShardCounts(self.samples + 1, self.objects + len(clicks.objects), self.pairs + clicks.num_pairs)

    def items(self, task: str) -> int:
        return self.pairs if task == "interactive" else self.samples


def check_counts(location: str, found: ShardCounts, entry: ShardEntry) -> None:
    """Raise an `InputError` naming the shard when what it holds differs from its manifest entry."""
    if found != ShardCounts.of(entry):
        raise InputError(location, f"holds (samples, objects, pairs) = {astuple(found)}, its manifest records "
                         f"{astuple(ShardCounts.of(entry))}", REWRITE_BOTH, kind="count_mismatch")


def read_counted(shards: ShardSet, *, check_digest: bool = True) -> Iterator[tuple[str, Sample]]:
    """Every sample of the set in order, with the location of its shard. With a manifest, each shard read to its
    end is checked against its entry (a consumer that stops early has nothing more checked)."""
    entries = shards.manifest.shards if shards.manifest is not None else (None,) * len(shards.locations)
    for location, entry in zip(shards.locations, entries, strict=True):
        counts = ShardCounts()
        for sample in read_shard(location, check_digest=check_digest):
            counts = counts.add(sample.clicks)
            yield location, sample
        if entry is not None:
            check_counts(location, counts, entry)
