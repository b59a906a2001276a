"""Widen a classifier's first convolution from RGB to RGB + click channels (+ the previous-mask channel), keeping the
(pretrained) RGB filters.

The extra channels start at zero (the network initially ignores the clicks and computes exactly what the RGB network
does) or at the mean of the RGB filters (iFCN paper: both work about the same). The convolution is changed in place,
without constructing a fresh layer, so the global RNG is not consumed and nothing else in the model moves.
"""

from __future__ import annotations

import torch
from torch import nn

from ifcn.trainer.models.model_config import FirstLayerInit


def first_conv(model: nn.Module, name: str) -> nn.Conv2d:
    """The convolution `name` of `model` (a backbone spec's `first_conv`), checked to be one."""
    try:
        conv = model.get_submodule(name)
    except AttributeError:
        raise ValueError(f"{type(model).__name__} has no module {name!r} (its backbone spec's first convolution)") \
            from None
    if not isinstance(conv, nn.Conv2d):
        raise ValueError(f"{type(model).__name__}.{name} is a {type(conv).__name__}, not the first Conv2d")
    return conv


def extra_channel_weights(rgb_weight: torch.Tensor, extra: int, init: FirstLayerInit) -> torch.Tensor:
    """(out, extra, kh, kw) filters for the added input channels, from the (out, 3, kh, kw) RGB filters."""
    out_channels, _, kh, kw = rgb_weight.shape
    if init == "zero":
        return rgb_weight.new_zeros(out_channels, extra, kh, kw)
    if init == "mean":
        return rgb_weight.mean(dim=1, keepdim=True).expand(-1, extra, -1, -1).clone()
    raise ValueError(f"first_layer_init must be 'zero' or 'mean', got {init!r}")


def adapt_first_layer(model: nn.Module, in_channels: int, init: FirstLayerInit, name: str) -> nn.Conv2d:
    """Give `model`'s first convolution (`name`, from the backbone spec) `in_channels` inputs: the first 3 keep their
    filters, the rest follow `init`."""
    conv = first_conv(model, name)
    if in_channels == conv.in_channels:
        return conv
    if conv.groups != 1:
        raise ValueError(f"first convolution {name!r} is grouped (groups={conv.groups}); cannot add input channels")
    if conv.in_channels != 3 or in_channels < 3:
        raise ValueError(f"first convolution {name!r} takes {conv.in_channels} channels; can only widen 3 to more, "
                         f"not to {in_channels}")
    with torch.no_grad():
        extra = extra_channel_weights(conv.weight, in_channels - 3, init)
        conv.weight = nn.Parameter(torch.cat([conv.weight, extra], dim=1))
    conv.in_channels = in_channels
    return conv
