"""Reading a slice of a shard (its training items [start, stop)): from a local index (one seek) or by streaming
from the first byte (remote shards) gives the same items as reading the whole shard, in both formats; a shard that
holds fewer or more items than its manifest records is named."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from ifcn.errors import InputError
from ifcn.shards import slices
from ifcn.shards.manifest import resolve_shards
from ifcn.shards.reader import read_shard
from ifcn.shards.slices import SliceReader, index_shard


def _all_items(location: str, task: str) -> list[tuple[str, int]]:
    """(key, item number within its sample) of every item of the shard, read whole."""
    n = {"interactive": lambda s: s.clicks.num_pairs, "semantic": lambda s: 1}[task]
    return [(s.key, i) for s in read_shard(location) for i in range(n(s))]


def _sliced(location: str, start: int, stop: int, task: str, **kw) -> list[tuple[str, int]]:
    return _read(SliceReader(location, task, **kw), start, stop)


def _read(reader: SliceReader, start: int, stop: int) -> list[tuple[str, int]]:
    return [(s.key, i) for s, lo, hi in reader.read(start, stop) for i in range(lo, hi)]


@pytest.mark.parametrize("task", ["interactive", "semantic"])
@pytest.mark.parametrize("fixture", ["train_shards", "train_shards_h5"])
def test_slices_equal_the_whole_shard_with_and_without_index(fixture: str, task: str,
                                                            request: pytest.FixtureRequest) -> None:
    rng = np.random.default_rng(0)
    for location in resolve_shards(request.getfixturevalue(fixture)).locations:
        whole = _all_items(location, task)
        index = index_shard(location, task)
        assert index.items == len(whole) and index.counts.samples == len(index.positions)
        for start, stop in [(0, len(whole)), *(sorted(rng.choice(len(whole) + 1, 2, replace=False)) for _ in range(6))]:
            expected = whole[start:stop]
            assert _sliced(location, start, stop, task, index=index, total=len(whole)) == expected
            assert _sliced(location, start, stop, task, total=len(whole)) == expected  # streamed, as remote shards


def test_index_positions_start_reading_at_their_sample(train_shards: Path) -> None:
    location = resolve_shards(train_shards).locations[1]
    keys = [s.key for s in read_shard(location)]
    for k, position in enumerate(index_shard(location, "interactive").positions):
        assert next(read_shard(location, start=position)).key == keys[k]


@pytest.mark.parametrize("indexed", [True, False])
def test_a_shard_with_other_item_counts_than_recorded_is_named(train_shards: Path, indexed: bool) -> None:
    location = resolve_shards(train_shards).locations[0]
    index = index_shard(location, "interactive") if indexed else None
    total = len(_all_items(location, "interactive"))
    with pytest.raises(InputError, match="holds only") as error:  # the manifest records more than there are
        _sliced(location, total - 2, total + 3, "interactive", index=index, total=total + 3)
    assert error.value.path == location and error.value.kind == "count_mismatch"
    # The manifest records fewer: the slice that ends there reads on to the shard's end.
    fewer = rf"holds (more than )?\d+ training items, the manifest records {total - 1}\."
    with pytest.raises(InputError, match=fewer) as error:
        _sliced(location, 0, total - 1, "interactive", index=index, total=total - 1)
    assert error.value.path == location


def test_slices_read_in_order_continue_one_stream(train_shards: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What keeps remote shards cheap: a worker's slices of one shard, read in order, cost one transfer."""
    location = resolve_shards(train_shards).locations[0]
    whole = _all_items(location, "interactive")
    opened: list[int] = []
    real = slices.read_records
    monkeypatch.setattr(slices, "read_records", lambda loc, start=0: opened.append(start) or real(loc, start))
    reader = SliceReader(location, "interactive", total=len(whole))  # no index: streamed, as a remote shard
    cuts = [0, 5, 6, 13, len(whole)]  # some cuts fall inside a sample's items
    assert [x for a, b in pairwise(cuts) for x in _read(reader, a, b)] == whole and opened == [0]
    assert _read(reader, 2, 4) == whole[2:4] and opened == [0, 0]  # before the current position: a new stream
    index = index_shard(location, "interactive")
    reader, opened[:] = SliceReader(location, "interactive", index=index, total=len(whole)), []
    assert _read(reader, 0, 2) + _read(reader, len(whole) - 3, len(whole)) == whole[:2] + whole[-3:]
    assert opened == [index.positions[0], index.positions[index.locate(len(whole) - 3)[0]]]  # a seek, not a read
