"""The trainer's input side: shard reading and checks, per-epoch shard plans, items, augmentation, batching."""

from ifcn.trainer.data.augment import AugmentConfig, CropItem, augment
from ifcn.trainer.data.items import Item, expand_sample
from ifcn.trainer.data.plan import WorkerPlan, plan_epoch, steps_per_epoch
from ifcn.trainer.data.shards import ShardInfo, check_shards, read_samples
from ifcn.trainer.data.stream import TrainStream, collate, make_loader

__all__ = ["AugmentConfig", "CropItem", "Item", "ShardInfo", "TrainStream", "WorkerPlan", "augment", "check_shards",
           "collate", "expand_sample", "make_loader", "plan_epoch", "read_samples", "steps_per_epoch"]
