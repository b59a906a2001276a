"""Validation at full image resolution: foreground IoU with the shards' own click pairs (interactive), a confusion
matrix (semantic). Used after training epochs and by `ifcn-eval`.

Images differ in size, so consecutive items of equal size are batched together and nothing is padded (padding
would change what the network sees near the border). Under DDP, sample `i` of the shard set goes to rank
`i % world_size` and the sums are all-reduced, so the result does not depend on the number of ranks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from itertools import islice

import numpy as np
import torch

from ifcn.labels import VOID
from ifcn.shards.counts import read_counted
from ifcn.shards.manifest import ShardSet
from ifcn.shards.reader import sample_errors
from ifcn.trainer.core.device import all_reduce_sum, rank_and_world
from ifcn.trainer.core.input_spec import InputSpec
from ifcn.trainer.core.inputs import batch_input
from ifcn.trainer.core.metrics import ConfusionMatrix, foreground_iou
from ifcn.trainer.core.precision import autocast
from ifcn.trainer.data.augment import CropItem
from ifcn.trainer.data.items import Item, expand_sample
from ifcn.trainer.data.stream import collate


def eval_items(shards: ShardSet, task: str, limit: int | None = None, check_digest: bool = True) -> Iterator[Item]:
    """Full-resolution items of this rank's samples (every `world`-th of the first `limit` samples). Every shard
    read to its end is checked against its manifest entry; a sample that does not decode names its shard and key."""
    rank, world = rank_and_world()
    for i, (location, sample) in enumerate(islice(read_counted(shards, check_digest=check_digest), limit)):
        if i % world == rank:
            with sample_errors(location, sample.key):
                items = list(expand_sample(sample, task))
            yield from items


def _same_size_batches(items: Iterator[Item], batch_size: int) -> Iterator[list[Item]]:
    batch: list[Item] = []
    for item in items:
        if batch and (len(batch) == batch_size or batch[0].image.shape != item.image.shape):
            yield batch
            batch = []
        batch.append(item)
    if batch:
        yield batch


def forward_items(model: torch.nn.Module, items: list[Item], task: str, device: torch.device,
                  precision: str, spec: InputSpec | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and uint8 targets (255 ignored) of a same-size batch of full-resolution items. The input
    follows `spec` (default: the task's contract of checkpoints without one); a `spec.prev_mask` model gets zeros in
    its previous-mask channel: the items' clicks are a first round."""
    batch = collate([CropItem(i.image, i.target(), i.pos, i.neg) for i in items], task)
    x = batch_input(batch, device, spec or InputSpec(clicks=task == "interactive"))
    with autocast(device, precision):
        logits = model(x)
    return logits.float(), batch["target"].to(device, non_blocking=True)


class EvalMode:
    """Put a model in eval mode and restore its previous mode afterwards."""

    def __init__(self, model: torch.nn.Module):
        self.model, self.was_training = model, model.training

    def __enter__(self) -> None:
        self.model.eval()

    def __exit__(self, *exc: object) -> None:
        self.model.train(self.was_training)


def validate_interactive(model: torch.nn.Module, shards: ShardSet, device: torch.device | str, batch_size: int = 8,
                         limit: int | None = None, precision: str = "fp32",
                         on_batch: Callable[[int], None] | None = None, *, check_digest: bool = True,
                         spec: InputSpec | None = None) -> dict[str, float]:
    """Mean foreground IoU of (logit > 0) against the object mask, void ignored: the mean over an object's pairs,
    then over objects. Returns `{"iou", "objects", "pairs"}` (`iou` is NaN with no object). `limit` caps images;
    `on_batch(items)` is called after each batch (a progress bar); `check_digest=False` skips the per-sample sha256;
    `spec`: the model's input contract (a `--prev-mask` model's channel is fed zeros)."""
    device = torch.device(device)
    per_object: dict[tuple[str, int], list[float]] = {}
    with EvalMode(model), torch.inference_mode():
        for items in _same_size_batches(eval_items(shards, "interactive", limit, check_digest), batch_size):
            logits, target = forward_items(model, items, "interactive", device, precision, spec)
            ious = foreground_iou(logits[:, 0] > 0, target == 1, target == VOID).tolist()
            for item, iou in zip(items, ious, strict=True):
                per_object.setdefault((item.key, item.object_id), []).append(iou)
            if on_batch is not None:
                on_batch(len(items))
    sums = torch.tensor([sum(float(np.mean(v)) for v in per_object.values()), len(per_object),
                         sum(len(v) for v in per_object.values())], dtype=torch.float64, device=device)
    total_iou, objects, pairs = all_reduce_sum(sums).tolist()
    return {"iou": total_iou / objects if objects else math.nan, "objects": int(objects), "pairs": int(pairs)}


def validate_semantic(model: torch.nn.Module, shards: ShardSet, device: torch.device | str, num_classes: int = 21,
                      batch_size: int = 8, limit: int | None = None, precision: str = "fp32",
                      on_batch: Callable[[int], None] | None = None, *,
                      check_digest: bool = True,
                      refine: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None) -> ConfusionMatrix:
    """Confusion matrix of argmax predictions against the class maps (255 ignored), summed over all ranks.
    `on_batch(images)` is called after each batch (a progress bar); `check_digest=False` skips the per-sample sha256;
    `refine(image, probabilities)` (RGB uint8 (H, W, 3), softmax (C, H, W)) replaces the argmax with its label map
    (a dense CRF: `ifcn-eval miou --crf`)."""
    device = torch.device(device)
    matrix = ConfusionMatrix(num_classes, device)
    with EvalMode(model), torch.inference_mode():
        for items in _same_size_batches(eval_items(shards, "semantic", limit, check_digest), batch_size):
            logits, target = forward_items(model, items, "semantic", device, precision)
            if refine is None:
                pred = logits.argmax(1)
            else:
                probs = logits.softmax(1).cpu().numpy()
                pred = torch.from_numpy(np.stack([refine(i.image, p) for i, p in zip(items, probs, strict=True)]))
            matrix.update(pred, target)
            if on_batch is not None:
                on_batch(len(items))
    matrix.all_reduce()
    return matrix
