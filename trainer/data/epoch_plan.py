"""Who reads what in an epoch: shards split over ranks and DataLoader workers, and how many batches each produces.

Pure functions of (shard item counts, seed, epoch, world size, workers), so every rank computes the same plan with
no communication, and a resumed run replays exactly the epochs it has not done.

- One epoch = every item ((object, pair) or image) once: `steps_per_epoch = total // (world × batch)`; the last
  partial global batch is dropped (at most world × batch − 1 items an epoch, different ones each epoch).
- The shard order is shuffled from (seed, epoch); shards then go greedily to the rank holding the fewest items, so
  ranks get disjoint, nearly equal shares. Each rank runs exactly `steps_per_epoch` steps: a rank with fewer items
  than `steps × batch` takes its first items again (re-shuffled), one with more stops early.
- Within a rank, shards go to workers the same way, and each worker's batch quota is proportional to its items
  (largest remainder), so each worker makes whole batches and a worker without shards makes none.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ifcn.shards.check import ShardInfo


@dataclass(frozen=True)
class WorkerPlan:
    """The shards one DataLoader worker reads (in this order) and the number of batches it yields."""

    shards: tuple[ShardInfo, ...]
    batches: int

    @property
    def locations(self) -> tuple[str, ...]:
        return tuple(s.location for s in self.shards)


def steps_per_epoch(total_items: int, world_size: int, batch_size: int) -> int:
    """Optimizer steps per epoch on every rank (the last partial global batch is dropped)."""
    return total_items // (world_size * batch_size)


def _greedy_split(shards: list[ShardInfo], parts: int) -> list[list[ShardInfo]]:
    """Deal shards, in the given order, each to the part with the fewest items so far (ties: lowest index)."""
    out: list[list[ShardInfo]] = [[] for _ in range(parts)]
    load = [0] * parts
    for shard in shards:
        i = min(range(parts), key=lambda j: (load[j], j))
        out[i].append(shard)
        load[i] += shard.items
    return out


def _quotas(counts: list[int], steps: int) -> list[int]:
    """Split `steps` batches over workers in proportion to `counts` (largest remainder; zero count -> zero)."""
    total = sum(counts)
    if total == 0:
        return [0] * len(counts)
    ideal = [steps * c / total for c in counts]
    base = [int(x) for x in ideal]
    order = sorted(range(len(counts)), key=lambda i: (-(ideal[i] - base[i]), i))
    for i in order[: steps - sum(base)]:
        base[i] += 1
    return base


def plan_epoch(shards: tuple[ShardInfo, ...], *, seed: int, epoch: int, world_size: int, rank: int, workers: int,
               steps: int) -> tuple[WorkerPlan, ...]:
    """The plan of every worker of `rank` for `epoch` (`workers` = DataLoader workers, at least 1)."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world size {world_size}")
    order = np.random.default_rng([seed, epoch, 0x5A4D]).permutation(len(shards))
    useful = [shards[i] for i in order if shards[i].items > 0]
    mine = _greedy_split(useful, world_size)[rank]
    per_worker = _greedy_split(mine, max(1, workers))
    quotas = _quotas([sum(s.items for s in w) for w in per_worker], steps)
    return tuple(WorkerPlan(tuple(w), q) for w, q in zip(per_worker, quotas, strict=True))
