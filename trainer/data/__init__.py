"""The trainer's input side: per-epoch plans of shard slices, items, augmentation, batch groups and batching."""

from ifcn.trainer.data.augment import AugmentConfig, CropItem, augment
from ifcn.trainer.data.epoch_plan import Group, RankPlan, Slice, plan_rank, steps_per_epoch
from ifcn.trainer.data.items import Item, expand_sample
from ifcn.trainer.data.stream import TrainStream, collate, make_loader

__all__ = ["AugmentConfig", "CropItem", "Group", "Item", "RankPlan", "Slice", "TrainStream", "augment", "collate",
           "expand_sample", "make_loader", "plan_rank", "steps_per_epoch"]
