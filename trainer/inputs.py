"""The network input contract (spec §3), built on the device: normalised RGB, then the two click distance channels,
then, for models trained with `--prev-mask`, the previous prediction's foreground probabilities.

Training, validation and inference all turn a batch into the network input with `batch_input`, so every path sees
the same tensor.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ifcn.trainer.clickmaps import capturing_graph, interaction_channels

#: ImageNet statistics shared by every torchvision classification weight set.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize_rgb(images: torch.Tensor, *, out: torch.Tensor | None = None) -> torch.Tensor:
    """uint8 (B, 3, H, W) RGB in [0, 255] -> float32 normalised with the ImageNet mean and std (into `out` if given).

    In place after one conversion: on the CPU the out-of-place form cost three full-size temporaries per batch.
    """
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(IMAGENET_STD, device=images.device).view(1, 3, 1, 1) * 255.0
    if out is None:
        out = images.float()
    else:
        out.copy_(images)
    return out.sub_(mean).div_(std)


def network_input(images: torch.Tensor, pos: torch.Tensor | None = None, pos_valid: torch.Tensor | None = None,
                  neg: torch.Tensor | None = None, neg_valid: torch.Tensor | None = None,
                  prev: torch.Tensor | None = None) -> torch.Tensor:
    """(B, 3, H, W) for the semantic task (no clicks given), (B, 5, H, W) for the interactive task, (B, 6, H, W) with
    `prev`, the (B, H, W) probabilities of the previous prediction (`--prev-mask` models; zeros before the first).

    Click tensors are (B, K, 2) (y, x) in input pixels with (B, K) validity masks, as the data loader pads them.
    The interactive input is allocated once and every channel is written into it (no concatenation copy), except in
    a graph being traced, exported or compiled, which gets the loop-free, out-of-place form.
    """
    if pos is None:
        if prev is not None:
            raise ValueError("the previous-mask channel belongs to the interactive input: pass the clicks too")
        return normalize_rgb(images)
    if pos_valid is None or neg is None or neg_valid is None:
        raise ValueError("interactive input needs positive and negative clicks with their validity masks")
    b, _, h, w = images.shape
    if capturing_graph():
        parts = [normalize_rgb(images), interaction_channels(pos, pos_valid, neg, neg_valid, h, w)]
        return torch.cat(parts if prev is None else [*parts, prev.float().unsqueeze(1)], dim=1)
    x = torch.empty(b, 5 if prev is None else 6, h, w, device=images.device)
    normalize_rgb(images, out=x[:, :3])
    interaction_channels(pos, pos_valid, neg, neg_valid, h, w, out=x[:, 3:5])
    if prev is not None:
        x[:, 5].copy_(prev)
    return x


#: What of a batch makes the network input (not `target`, nor the loader's `item` provenance).
_INPUT_KEYS = ("image", "pos", "pos_valid", "neg", "neg_valid")
#: The batch key of the previous prediction's probabilities, (B, H, W) float (`--prev-mask` models only).
PREV = "prev"


def batch_input(batch: Mapping[str, torch.Tensor], device: torch.device, channels_last: bool = False,
                prev_mask: bool = False) -> torch.Tensor:
    """The network input of a batch in the loader's layout, built on `device`.

    `batch["image"]` is (B, H, W, 3) uint8 RGB; interactive batches add `pos`/`neg` (B, K, 2) (y, x) click coordinates
    with (B, K) `pos_valid`/`neg_valid` masks. Only the uint8 pixels and the coordinates cross to the device.
    `prev_mask` (a model trained with `--prev-mask`) adds the channel of `batch["prev"]`, or of zeros when the batch
    has none: the first round, before any prediction (training without extra rounds, validation).
    """
    moved = {k: batch[k].to(device, non_blocking=True) for k in _INPUT_KEYS if k in batch}
    images = moved["image"].permute(0, 3, 1, 2)
    prev = None
    if prev_mask:
        prev = batch[PREV].to(device, non_blocking=True) if PREV in batch else \
            torch.zeros(images.shape[0], *images.shape[2:], device=device)
    x = network_input(images, moved.get("pos"), moved.get("pos_valid"), moved.get("neg"), moved.get("neg_valid"),
                      prev)
    return x.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
