"""The network input (spec §3), built on the device by the model's `InputSpec`: normalised RGB, then the two click
channels, then, for models trained with `--prev-mask`, the previous prediction's foreground probabilities.

Training, validation and inference all turn a batch into the network input with `batch_input`, so every path sees
the same tensor.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ifcn.trainer.core.clickmaps import DEFAULT_SPEC, capturing_graph, interaction_channels
from ifcn.trainer.core.input_spec import InputSpec

#: The batch keys of the clicks: (B, K, 2) (y, x) coordinates per sign and their (B, K) validity masks.
CLICK_KEYS = ("pos", "pos_valid", "neg", "neg_valid")
#: What of a batch makes the network input (not `target`, nor the loader's `item` provenance).
INPUT_KEYS = ("image", *CLICK_KEYS)
#: The batch key of the previous prediction's probabilities, (B, H, W) float (`--prev-mask` models only).
PREV = "prev"


def normalize_rgb(images: torch.Tensor, spec: InputSpec = DEFAULT_SPEC, *,
                  out: torch.Tensor | None = None) -> torch.Tensor:
    """uint8 (B, 3, H, W) RGB in [0, 255] -> float32 normalised with the spec's mean and std (into `out` if given).

    In place after one conversion: on the CPU the out-of-place form cost three full-size temporaries per batch.
    """
    mean = torch.tensor(spec.mean, device=images.device).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(spec.std, device=images.device).view(1, 3, 1, 1) * 255.0
    if out is None:
        out = images.float()
    else:
        out.copy_(images)
    return out.sub_(mean).div_(std)


def network_input(images: torch.Tensor, pos: torch.Tensor | None = None, pos_valid: torch.Tensor | None = None,
                  neg: torch.Tensor | None = None, neg_valid: torch.Tensor | None = None,
                  prev: torch.Tensor | None = None, spec: InputSpec = DEFAULT_SPEC) -> torch.Tensor:
    """(B, 3, H, W) for the semantic task (no clicks given), (B, 5, H, W) for the interactive task, (B, 6, H, W) with
    `prev`, the (B, H, W) probabilities of the previous prediction (`--prev-mask` models; zeros before the first).

    Click tensors are (B, K, 2) (y, x) in input pixels with (B, K) validity masks, as the data loader pads them.
    The interactive input is allocated once and every channel is written into it (no concatenation copy), except in
    a graph being traced, exported or compiled, which gets the loop-free, out-of-place form.
    """
    if pos is None:
        if prev is not None:
            raise ValueError("the previous-mask channel belongs to the interactive input: pass the clicks too")
        return normalize_rgb(images, spec)
    if pos_valid is None or neg is None or neg_valid is None:
        raise ValueError("interactive input needs positive and negative clicks with their validity masks")
    b, _, h, w = images.shape
    if capturing_graph():
        parts = [normalize_rgb(images, spec), interaction_channels(pos, pos_valid, neg, neg_valid, h, w, spec=spec)]
        return torch.cat(parts if prev is None else [*parts, prev.float().unsqueeze(1)], dim=1)
    x = torch.empty(b, 5 if prev is None else 6, h, w, device=images.device)
    normalize_rgb(images, spec, out=x[:, :3])
    interaction_channels(pos, pos_valid, neg, neg_valid, h, w, out=x[:, 3:5], spec=spec)
    if prev is not None:
        x[:, 5].copy_(prev)
    return x


def batch_input(batch: Mapping[str, torch.Tensor], device: torch.device, spec: InputSpec = DEFAULT_SPEC,
                channels_last: bool = False) -> torch.Tensor:
    """The network input of a batch in the loader's layout, built on `device` as `spec` says.

    `batch["image"]` is (B, H, W, 3) uint8 RGB; interactive batches add `pos`/`neg` (B, K, 2) (y, x) click coordinates
    with (B, K) `pos_valid`/`neg_valid` masks. Only the uint8 pixels and the coordinates cross to the device.
    A `spec.prev_mask` model gets the channel of `batch["prev"]`, or of zeros when the batch has none: the first
    round, before any prediction (training without extra rounds, validation).
    """
    moved = {k: batch[k].to(device, non_blocking=True) for k in INPUT_KEYS if k in batch}
    images = moved["image"].permute(0, 3, 1, 2)
    prev = None
    if spec.prev_mask:
        prev = batch[PREV].to(device, non_blocking=True) if PREV in batch else \
            torch.zeros(images.shape[0], *images.shape[2:], device=device)
    x = network_input(images, moved.get("pos"), moved.get("pos_valid"), moved.get("neg"), moved.get("neg_valid"),
                      prev, spec)
    return x.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
