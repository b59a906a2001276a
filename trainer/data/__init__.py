"""The trainer's input side: shard reading and checks, per-epoch shard plans, items, augmentation, batching."""

from ifcn.trainer.data.augment import AugmentConfig, CropItem, augment
from ifcn.trainer.data.items import Item, expand_sample
from ifcn.trainer.data.epoch_plan import WorkerPlan, plan_epoch, steps_per_epoch
from ifcn.trainer.data.stream import TrainStream, collate, make_loader

__all__ = ["AugmentConfig", "CropItem", "Item", "TrainStream", "WorkerPlan", "augment", "collate", "expand_sample",
           "make_loader", "plan_epoch", "steps_per_epoch"]
