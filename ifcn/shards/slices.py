"""Reading part of a shard: its training items [start, stop), for epoch plans that cut shards into slices shared
out to ranks and loader workers (`ifcn.trainer.data.epoch_plan`).

A task's items, in shard order, are its (object, pair)s (interactive) or its samples (semantic). To begin in the
middle of a shard a reader must know where each sample starts and how many items it holds:

- a local shard is indexed once (`index_shard`: the tar headers and each sample's clicks JSON, or the HDF5 rows;
  images and masks are not read), so a slice starts with one seek and skipping costs nothing;
- a remote shard (`http(s)://`, `pipe:`) cannot seek: a slice streams it from its first byte, counting the items of
  the samples before the slice from their clicks JSON (neither decoded nor digest-checked: they are not used). A
  slice therefore transfers the shard up to the slice's end, unless it comes after the slice the same
  `SliceReader` read last, whose stream it continues.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import accumulate

from ifcn.errors import InputError
from ifcn.shards.counts import REWRITE_BOTH, ShardCounts, items_of
from ifcn.shards.formats import RawSample
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


class SliceReader:
    """Reads slices [start, stop) of one shard's items for a task, each as the samples holding them.

    Slices read in increasing order continue one stream, so a remote shard whose slices a loader worker reads in
    order is transferred once; a slice before the current position reopens the shard (one seek for a local shard
    with an index, a new transfer from the first byte for a remote one). `total` is the shard's item count by its
    manifest: a shard with fewer items than a slice needs, or with more when a slice ends at `total` (it is then
    read on to its end), is an `InputError` naming the shard (kind `count_mismatch`).
    """

    def __init__(self, location: str, task: str, *, index: ShardIndex | None = None, total: int | None = None,
                 check_digest: bool = True):
        self.location, self.task, self.index, self.total, self.check_digest = location, task, index, total, check_digest
        self._records: Iterator[RawSample] | None = None
        self._sample = 0  # number of the sample in `_held` (or of the next record)
        self._at = 0  # number of its first item
        self._held: tuple[str, dict[str, bytes], int] | None = None  # a record read but not passed yet

    def close(self) -> None:
        if self._records is not None:
            self._records.close()
            self._records = None

    def _open(self, start: int) -> None:
        self.close()
        self._sample, self._at = self.index.locate(start) if self.index is not None else (0, 0)
        positions = self.index.positions if self.index is not None else (0,)
        self._records = (read_records(self.location, positions[self._sample]) if self._sample < len(positions)
                         else (record for record in ()))
        self._held = None

    def _must_open(self, start: int) -> bool:
        """Whether reading [start, ...) needs a new stream: it begins before the current position, or (with an
        index) at a later sample than the next one, which a seek reaches faster than reading on."""
        if self._records is None or start < self._at:
            return True
        return self.index is not None and self.index.locate(start)[0] != self._sample

    def _peek(self) -> tuple[str, dict[str, bytes], int] | None:
        if self._held is None:
            record = next(self._records, None)
            if record is not None:
                key, fields = record
                self._held = key, fields, items_of(_clicks(self.location, key, fields), self.task)
        return self._held

    def _pass(self, items: int) -> None:
        self._sample += 1
        self._at += items
        self._held = None

    def read(self, start: int, stop: int) -> Iterator[tuple[Sample, int, int]]:
        """Each sample holding items of [start, stop) with the range [lo, hi) of its own items in the slice."""
        if self._must_open(start):
            self._open(start)
        while self._at < stop or stop == self.total:
            record = self._peek()
            if record is None:
                break
            key, fields, n = record
            if self._at >= stop:  # the slice ends the shard: nothing with items may follow
                if n:
                    raise _mismatch(self.location, f"more than {self._at}", self.total, stop)
                self._pass(n)
                continue
            if self._at + n > start:
                with sample_errors(self.location, key):
                    sample = Sample.from_fields(key, fields, check_digest=self.check_digest)
                yield sample, max(start - self._at, 0), min(stop - self._at, n)
            if self._at + n > stop:  # the sample goes on into the next slice, which starts with it
                if stop == self.total:
                    raise _mismatch(self.location, f"{self._at + n}", self.total, stop)
                return
            self._pass(n)
        if self._at < stop:
            raise _mismatch(self.location, f"only {self._at}", self.total, stop)
