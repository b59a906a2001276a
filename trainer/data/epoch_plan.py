"""Who reads what in an epoch: a pure function of (items per shard, seed, epoch, world size, batch size), so every
rank and loader worker computes the same plan with no communication, a resumed run replays exactly the epochs it has
not done, and the number of loader workers changes nothing.

- Each shard's items are cut into chunks of `chunk_items` (a shard's last chunk may be shorter) and the chunks are
  shuffled from (seed, epoch); laid end to end they form the epoch's item sequence.
- Rank r takes the items [r·S, (r+1)·S) of that sequence, S = steps × batch: disjoint, equal shares for any number
  of ranks and of shards ≥ 1. With `steps = steps_per_epoch(...)` every item is read once an epoch except the last
  total − world·S of the sequence (fewer than world × batch, other ones every epoch).
- A rank's share is cut into batch groups of `group_batches` batches (the last may be shorter). A group is the unit
  one loader worker reads, shuffles and augments: worker g mod W takes group g, and the group's randomness is
  seeded by (seed, epoch, rank, g), so its batches are the same for any number of workers W.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Slice:
    """The items [start, stop) of shard number `shard` (its position in the shard set)."""

    shard: int
    start: int
    stop: int


@dataclass(frozen=True)
class Group:
    """Batch group `index` of a rank's epoch: `batches` batches made of the items of `slices`."""

    index: int
    batches: int
    slices: tuple[Slice, ...]


def steps_per_epoch(total_items: int, world_size: int, batch_size: int) -> int:
    """Optimizer steps per epoch on every rank (the last partial global batch is dropped)."""
    return total_items // (world_size * batch_size)


@dataclass(frozen=True, eq=False)
class RankPlan:
    """One rank's share of an epoch: the shuffled chunk sequence (shard, first item, cumulative end per chunk) and
    where the rank's share begins in it. `group(g)` resolves one batch group to its slices."""

    chunk_shard: np.ndarray
    chunk_start: np.ndarray
    chunk_end: np.ndarray  # position in the epoch's item sequence where each chunk ends
    share_start: int
    steps: int
    batch_size: int
    group_batches: int

    @property
    def num_groups(self) -> int:
        return -(-self.steps // self.group_batches)

    def _take(self, start: int, stop: int) -> tuple[Slice, ...]:
        """The slices of the sequence positions [start, stop)."""
        out = []
        for j in range(int(np.searchsorted(self.chunk_end, start, side="right")), len(self.chunk_end)):
            begin, end = (int(self.chunk_end[j - 1]) if j else 0), int(self.chunk_end[j])
            if begin >= stop:
                break
            first = int(self.chunk_start[j])
            out.append(Slice(int(self.chunk_shard[j]), first + max(start, begin) - begin,
                             first + min(stop, end) - begin))
        return tuple(out)

    def group(self, index: int) -> Group:
        if not 0 <= index < self.num_groups:
            raise IndexError(f"group {index} outside 0..{self.num_groups - 1}")
        first = index * self.group_batches
        batches = min(self.group_batches, self.steps - first)
        start = self.share_start + first * self.batch_size
        return Group(index, batches, self._take(start, start + batches * self.batch_size))

    def groups(self, worker: int = 0, workers: int = 1) -> Iterator[Group]:
        """The groups loader worker `worker` of `workers` makes, in order (every group with `workers` = 1)."""
        for index in range(worker, self.num_groups, max(1, workers)):
            yield self.group(index)


def plan_rank(items: Sequence[int], *, seed: int, epoch: int, world_size: int, rank: int, batch_size: int,
              steps: int, group_batches: int, chunk_items: int) -> RankPlan:
    """The plan of `rank` for `epoch`; `items` = training items per shard, `steps` ≤ `steps_per_epoch(...)`."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world size {world_size}")
    if steps > steps_per_epoch(sum(items), world_size, batch_size):
        raise ValueError(f"{steps} steps of {batch_size} items on {world_size} rank(s) need more than the "
                         f"{sum(items)} items of the shards")
    if min(batch_size, group_batches, chunk_items) < 1:
        raise ValueError("batch size, group batches and chunk items must be ≥ 1")
    shard = np.concatenate([np.full(-(-n // chunk_items), i) for i, n in enumerate(items)] or [np.zeros(0, int)])
    start = np.concatenate([np.arange(0, n, chunk_items) for n in items] or [np.zeros(0, int)])
    length = np.minimum(chunk_items, np.asarray(items)[shard] - start)
    order = np.random.default_rng([seed, epoch, 0x5A4D]).permutation(len(shard))
    return RankPlan(shard[order], start[order], np.cumsum(length[order]), rank * steps * batch_size, steps,
                    batch_size, group_batches)
