"""The training input stream: shards -> decoded images -> items -> shuffle buffer -> augmentation -> batches.

Runs inside DataLoader workers. Every random choice comes from a numpy Generator seeded with
(seed, epoch, rank, worker), so a run is reproducible for a given seed, world size and worker count, and a resumed
run continues with exactly the batches an uninterrupted one would have seen.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import count, islice

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from ifcn.trainer.data.augment import AugmentConfig, CropItem, augment
from ifcn.trainer.data.items import Item, expand_sample
from ifcn.trainer.data.epoch_plan import WorkerPlan, plan_epoch
from ifcn.shards.check import ShardInfo
from ifcn.shards.reader import read_shard

#: Click lists are padded to a multiple of this, so that batch shapes (and compiled graphs) vary little.
CLICK_PAD = 8


def shuffle_buffer(items: Iterable[Item], size: int, rng: np.random.Generator) -> Iterator[Item]:
    """Reservoir-style shuffle: fill `size` slots, then emit a random slot and refill it; drain at the end."""
    buf: list[Item] = []
    for item in items:
        if len(buf) < size:
            buf.append(item)
            continue
        i = int(rng.integers(size))
        buf[i], item = item, buf[i]
        yield item
    while buf:
        i = int(rng.integers(len(buf)))
        buf[i], buf[-1] = buf[-1], buf[i]
        yield buf.pop()


def plan_items(plan: WorkerPlan, task: str, rng: np.random.Generator) -> Iterator[Item]:
    """The worker's items, its shards in plan order; after one pass, further passes in freshly shuffled shard order
    (only needed when the worker's quota exceeds its items). Ends once the items are exhausted for good."""
    for n in count():
        shards = plan.locations if n == 0 else tuple(plan.locations[i] for i in rng.permutation(len(plan.locations)))
        produced = 0
        for location in shards:
            for sample in read_shard(location):
                for item in expand_sample(sample, task):
                    produced += 1
                    yield item
        if not produced:
            return


def _pad_clicks(clicks: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    k = max([len(c) for c in clicks] + [1])
    k = -(-k // CLICK_PAD) * CLICK_PAD
    out = np.zeros((len(clicks), k, 2), np.int32)
    valid = np.zeros((len(clicks), k), bool)
    for i, c in enumerate(clicks):
        out[i, : len(c)] = c
        valid[i, : len(c)] = True
    return torch.from_numpy(out), torch.from_numpy(valid)


def collate(items: list[CropItem], task: str) -> dict[str, torch.Tensor]:
    """Stack crops: `image` (B, H, W, 3) uint8 (channels-last order: permuted on the device), `target` (B, H, W)
    uint8 with 255 = ignored, and for the interactive task `pos`/`neg` (B, K, 2) int32 (y, x) with (B, K) masks."""
    batch = {"image": torch.from_numpy(np.stack([i.image for i in items])),
             "target": torch.from_numpy(np.stack([i.target for i in items]))}
    if task == "interactive":
        batch["pos"], batch["pos_valid"] = _pad_clicks([i.pos for i in items])
        batch["neg"], batch["neg_valid"] = _pad_clicks([i.neg for i in items])
    return batch


@dataclass
class TrainStream(IterableDataset):
    """One rank's share of an epoch. Call `set_epoch` before creating the DataLoader iterator of each epoch."""

    shards: tuple[ShardInfo, ...]
    task: str
    augment: AugmentConfig
    batch_size: int
    steps: int
    seed: int
    world_size: int = 1
    rank: int = 0
    workers: int = 0
    shuffle_items: int = 512
    epoch: int = field(default=0)

    def __post_init__(self) -> None:
        super().__init__()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def worker_plans(self) -> tuple[WorkerPlan, ...]:
        return plan_epoch(self.shards, seed=self.seed, epoch=self.epoch, world_size=self.world_size, rank=self.rank,
                          workers=self.workers, steps=self.steps)

    def __iter__(self) -> Iterator[CropItem]:
        info = get_worker_info()  # DataLoader workers already run torch on one thread
        worker = info.id if info is not None else 0
        plan = self.worker_plans()[worker]
        rng = np.random.default_rng([self.seed, self.epoch, self.rank, worker])
        items = shuffle_buffer(plan_items(plan, self.task, rng), self.shuffle_items, rng)
        for item in islice(items, plan.batches * self.batch_size):
            yield augment(item, self.augment, rng)


def make_loader(stream: TrainStream, *, pin_memory: bool = False) -> DataLoader:
    """Batches of `stream`; each worker batches its own items, so every batch is full.

    With workers, OpenCV's thread pool is switched off in this process first: a worker forked while the pool exists
    deadlocks in its first OpenCV call (the pool's threads are not copied by fork), and each worker is meant to use
    one core anyway. The setting is inherited by the workers.
    """
    if stream.workers:
        cv2.setNumThreads(1)
    return DataLoader(stream, batch_size=stream.batch_size, num_workers=stream.workers, pin_memory=pin_memory,
                      collate_fn=_Collate(stream.task), persistent_workers=False,
                      prefetch_factor=4 if stream.workers else None)


@dataclass(frozen=True)
class _Collate:
    """A picklable collate function bound to the task (workers receive it by pickling)."""

    task: str

    def __call__(self, items: list[CropItem]) -> dict[str, torch.Tensor]:
        return collate(items, self.task)
