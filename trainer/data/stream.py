"""The training input stream: epoch plan -> batch groups -> shard slices -> decoded images -> items -> shuffled,
augmented crops -> batches.

A batch group (see `epoch_plan`) is the DataLoader's unit: worker g mod W builds group g whole (its items shuffled
and augmented with a generator seeded by (seed, epoch, rank, g)) and hands it over as one element; the DataLoader
takes its workers' elements in turn, so the groups, and the batches in them, arrive in the same order for any
number of workers, and `--workers` may change on resume. An image is decoded once per slice and shared by its
items (numpy arrays by reference). A bad shard or sample stops the run with an `InputError` naming them: a worker
hands the error over in place of its group (a DataLoader would turn it into a traceback), and the main process
raises it before any batch of that group is used.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from ifcn.errors import InputError
from ifcn.shards.check import ShardInfo
from ifcn.shards.reader import sample_errors
from ifcn.shards.slices import SliceReader
from ifcn.trainer.core.clicks import pad_clicks
from ifcn.trainer.data.augment import AugmentConfig, CropItem, augment
from ifcn.trainer.data.epoch_plan import Group, RankPlan, Slice, plan_rank
from ifcn.trainer.data.items import Item, expand_sample

#: Click lists are padded to a multiple of this, so that batch shapes (and compiled graphs) vary little.
CLICK_PAD = 8
#: Batch groups each worker may have ready ahead of the training loop.
PREFETCH_GROUPS = 2


def collate(items: list[CropItem], task: str) -> dict[str, torch.Tensor]:
    """Stack crops: `image` (B, H, W, 3) uint8 (channels-last order: permuted on the device), `target` (B, H, W)
    uint8 with 255 = ignored, and for the interactive task `pos`/`neg` (B, K, 2) int32 (y, x) with (B, K) masks."""
    batch = {"image": torch.from_numpy(np.stack([i.image for i in items])),
             "target": torch.from_numpy(np.stack([i.target for i in items]))}
    if task == "interactive":
        batch["pos"], batch["pos_valid"] = pad_clicks([i.pos for i in items], CLICK_PAD)
        batch["neg"], batch["neg_valid"] = pad_clicks([i.neg for i in items], CLICK_PAD)
    return batch


@dataclass
class TrainStream(IterableDataset):
    """One rank's share of an epoch, as batch groups. Call `set_epoch` before iterating `make_loader(stream)`.

    `shuffle_items`: items shuffled together, one worker's group (rounded down to whole batches, at least one);
    `chunk_items`: the unit in which shards are cut and the epoch shuffled; `check_digest`: check each sample's sha256.
    """

    shards: tuple[ShardInfo, ...]
    task: str
    augment: AugmentConfig
    batch_size: int
    steps: int
    seed: int
    world_size: int = 1
    rank: int = 0
    workers: int = 0
    shuffle_items: int = 128
    chunk_items: int = 16
    check_digest: bool = True
    epoch: int = field(default=0)

    def __post_init__(self) -> None:
        super().__init__()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @property
    def group_batches(self) -> int:
        return max(1, self.shuffle_items // self.batch_size)

    def plan(self) -> RankPlan:
        return plan_rank([s.items for s in self.shards], seed=self.seed, epoch=self.epoch,
                         world_size=self.world_size, rank=self.rank, batch_size=self.batch_size, steps=self.steps,
                         group_batches=self.group_batches, chunk_items=self.chunk_items)

    def _slice_items(self, reader: SliceReader, piece: Slice) -> Iterator[tuple[int, Item]]:
        """(item number in its shard, item) of every item of a slice, in shard order."""
        number = piece.start
        for sample, lo, hi in reader.read(piece.start, piece.stop):
            with sample_errors(reader.location, sample.key):  # a mask that does not decode names its shard and key
                items = list(expand_sample(sample, self.task))[lo:hi]
            for item in items:
                yield number, item
                number += 1

    def _group_batches(self, group: Group, readers: _Readers) -> list[dict[str, torch.Tensor]]:
        """The batches of one group. Each batch also holds `item` (B, 2) int64: (shard number, item number in the
        shard) of each crop, so where a crop came from can be traced (and counted)."""
        rng = np.random.default_rng([self.seed, self.epoch, self.rank, group.index])
        found = [(piece.shard, number, item) for piece in group.slices
                 for number, item in self._slice_items(readers.get(self.shards[piece.shard]), piece)]
        order = rng.permutation(len(found))
        batches = []
        for k in range(0, len(order), self.batch_size):  # each batch stacked while its crops are still in cache
            chosen = order[k:k + self.batch_size]
            batch = collate([augment(found[i][2], self.augment, rng) for i in chosen], self.task)
            batch["item"] = torch.tensor([found[i][:2] for i in chosen], dtype=torch.int64).reshape(-1, 2)
            batches.append(batch)
        return batches

    def __iter__(self) -> Iterator[list[dict[str, torch.Tensor]] | InputError]:
        info = get_worker_info()  # DataLoader workers already run torch on one thread
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        readers = _Readers(self.task, self.check_digest)
        try:
            for group in self.plan().groups(worker, workers):
                yield self._group_batches(group, readers)
        except InputError as e:
            yield e  # whole, with its shard and key: the main process raises it
        finally:
            readers.close()


class _Readers:
    """A worker's shard reader, kept from one slice to the next: the worker's next slice of the same shard comes
    later in it (its groups are in order), so the reader goes on in the same stream instead of starting over."""

    def __init__(self, task: str, check_digest: bool):
        self.task, self.check_digest = task, check_digest
        self.current: SliceReader | None = None

    def get(self, shard: ShardInfo) -> SliceReader:
        if self.current is None or self.current.location != shard.location:
            self.close()
            self.current = SliceReader(shard.location, self.task, index=shard.index, total=shard.items,
                                       check_digest=self.check_digest)
        return self.current

    def close(self) -> None:
        if self.current is not None:
            self.current.close()
            self.current = None


def _unchanged(element: object) -> object:
    return element


def _batches(loader: DataLoader) -> Iterator[dict[str, torch.Tensor]]:
    for group in loader:
        if isinstance(group, InputError):
            raise group
        yield from group


def make_loader(stream: TrainStream, *, pin_memory: bool = False) -> Iterator[dict[str, torch.Tensor]]:
    """The batches of `stream`'s epoch, in plan order for any number of workers.

    With workers, OpenCV's thread pool is switched off in this process first: a worker forked while the pool exists
    deadlocks in its first OpenCV call (the pool's threads are not copied by fork), and each worker is meant to use
    one core anyway. The setting is inherited by the workers.
    """
    if stream.workers:
        cv2.setNumThreads(1)
    loader = DataLoader(stream, batch_size=None, num_workers=stream.workers, pin_memory=pin_memory,
                        collate_fn=_unchanged, persistent_workers=False,
                        prefetch_factor=PREFETCH_GROUPS if stream.workers else None)
    return _batches(loader)
