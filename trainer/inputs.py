"""The network input contract (spec §3), built on the device: normalised RGB, then the two click distance channels.

Training, validation and inference all turn a batch into the network input with `batch_input`, so every path sees
the same tensor.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ifcn.trainer.clickmaps import interaction_channels

#: ImageNet statistics shared by every torchvision classification weight set.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize_rgb(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 3, H, W) RGB in [0, 255] -> float32 normalised with the ImageNet mean and std."""
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(IMAGENET_STD, device=images.device).view(1, 3, 1, 1) * 255.0
    return (images.float() - mean) / std


def network_input(images: torch.Tensor, pos: torch.Tensor | None = None, pos_valid: torch.Tensor | None = None,
                  neg: torch.Tensor | None = None, neg_valid: torch.Tensor | None = None) -> torch.Tensor:
    """(B, 3, H, W) for the semantic task (no clicks given), (B, 5, H, W) for the interactive task.

    Click tensors are (B, K, 2) (y, x) in input pixels with (B, K) validity masks, as the data loader pads them.
    """
    rgb = normalize_rgb(images)
    if pos is None:
        return rgb
    if pos_valid is None or neg is None or neg_valid is None:
        raise ValueError("interactive input needs positive and negative clicks with their validity masks")
    h, w = images.shape[-2:]
    return torch.cat([rgb, interaction_channels(pos, pos_valid, neg, neg_valid, h, w)], dim=1)


#: What of a batch makes the network input (not `target`, nor the loader's `item` provenance).
_INPUT_KEYS = ("image", "pos", "pos_valid", "neg", "neg_valid")


def batch_input(batch: Mapping[str, torch.Tensor], device: torch.device, channels_last: bool = False) -> torch.Tensor:
    """The network input of a batch in the loader's layout, built on `device`.

    `batch["image"]` is (B, H, W, 3) uint8 RGB; interactive batches add `pos`/`neg` (B, K, 2) (y, x) click coordinates
    with (B, K) `pos_valid`/`neg_valid` masks. Only the uint8 pixels and the coordinates cross to the device.
    """
    moved = {k: batch[k].to(device, non_blocking=True) for k in _INPUT_KEYS if k in batch}
    x = network_input(moved["image"].permute(0, 3, 1, 2), moved.get("pos"), moved.get("pos_valid"), moved.get("neg"),
                      moved.get("neg_valid"))
    return x.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
