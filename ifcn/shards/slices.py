"""Reading part of a shard: its training items [start, stop), for epoch plans that cut shards into slices shared
out to ranks and loader workers (`ifcn.trainer.data.epoch_plan`).

A task's items, in shard order, are its (object, pair)s (interactive) or its samples (semantic). To begin in the
middle of a shard a reader must know where each sample starts and how many items it holds:

- a local shard is indexed once (`index_shard`: the tar headers and each sample's clicks JSON, or the HDF5 rows;
  images and masks are not read), so a slice starts with one seek and skipping costs nothing;
- a remote shard (`http(s)://`, `pipe:`) cannot seek: a slice streams it from its first byte, counting the items of
  the samples before the slice from their clicks JSON (neither decoded nor digest-checked: they are not used). A
  slice therefore transfers the shard up to the slice's end.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import accumulate

from ifcn.errors import InputError
from ifcn.shards.counts import REWRITE_BOTH, ShardCounts, items_of
from ifcn.shards.reader import read_failure, read_records, sample_errors, shard_format
from ifcn.shards.records import FIELD_CLICKS, ImageClicks, Sample


@dataclass(frozen=True)
class ShardIndex:
    """Where each sample of a local shard begins (its format's position) and where its items end, for one task."""

    positions: tuple[int, ...]
    item_ends: tuple[int, ...]
    counts: ShardCounts

    @property
    def items(self) -> int:
        return self.item_ends[-1] if self.item_ends else 0

    def locate(self, item: int) -> tuple[int, int]:
        """(number of the sample holding `item` (or the number of samples past the end), its first item)."""
        sample = bisect_right(self.item_ends, item)
        return sample, self.item_ends[sample - 1] if sample else 0


def _clicks(location: str, key: str, fields: dict[str, bytes]) -> ImageClicks:
    with sample_errors(location, key):
        return ImageClicks.from_json_bytes(fields[FIELD_CLICKS])


def index_shard(location: str, task: str) -> ShardIndex:
    """Index a local shard for `task` by reading its clicks only; errors name the shard (and the key)."""
    positions: list[int] = []
    items: list[int] = []
    counts = ShardCounts()
    last: str | None = None
    fmt = shard_format(location)
    try:
        for position, key, clicks_json in fmt.scan(location):
            clicks = _clicks(location, key, {FIELD_CLICKS: clicks_json})
            positions.append(position)
            items.append(items_of(clicks, task))
            counts = counts.add(clicks)
            last = key
    except InputError:
        raise
    except Exception as e:  # a tar or HDF5 file that cannot be scanned
        raise read_failure(location, e, last) from e
    return ShardIndex(tuple(positions), tuple(accumulate(items)), counts)


def _mismatch(location: str, found: str, total: int | None, stop: int) -> InputError:
    recorded = f"the manifest records {total}" if total is not None else f"the epoch plan needs {stop}"
    return InputError(location, f"holds {found} training items, {recorded}", REWRITE_BOTH, kind="count_mismatch")


def read_items(location: str, start: int, stop: int, task: str, *, index: ShardIndex | None = None,
               total: int | None = None, check_digest: bool = True) -> Iterator[tuple[Sample, int, int]]:
    """Each sample holding items of the shard's slice [start, stop), with the range [lo, hi) of its own items that
    lie in the slice. `total` is the shard's item count by its manifest: a shard with fewer than `stop` items, or,
    for a slice that ends at `total`, with more, raises an `InputError` naming the shard (kind `count_mismatch`)."""
    at, begin = 0, 0
    if index is not None:
        first, at = index.locate(start)
        if first == len(index.positions):
            raise _mismatch(location, f"only {index.items}", total, stop)
        begin = index.positions[first]
    for key, fields in read_records(location, begin):
        n = items_of(_clicks(location, key, fields), task)
        if at >= stop:  # only read past the slice to prove that a shard holds no more than its manifest says
            if n:
                raise _mismatch(location, f"more than {at}", total, stop)
            continue
        if at + n > start:
            with sample_errors(location, key):
                sample = Sample.from_fields(key, fields, check_digest=check_digest)
            yield sample, max(start - at, 0), min(stop - at, n)
        at += n
        if at >= stop and stop != total:
            return
    if at < stop:
        raise _mismatch(location, f"only {at}", total, stop)
    if at > stop:  # the last sample straddles the end the manifest gives
        raise _mismatch(location, f"{at}", total, stop)
