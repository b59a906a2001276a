"""VGG and AlexNet as in the FCN paper: taps at the last three max-pools, fc6/fc7 turned into convolutions.

fc6 becomes a k×k convolution (VGG: 7×7, 512→4096; AlexNet: 6×6, 256→4096) and fc7 a 1×1 convolution, with the
classifier's Linear weights reshaped into them, so on a k×k pool5 map the centre output equals the classifier's fc7.
"Same" zero padding of fc6 (instead of the paper's 100-pixel input padding and crop) keeps inputs down to 32 px
valid.
"""

from __future__ import annotations

import math
from collections import OrderedDict

from torch import nn

from ifcn.trainer.models.model_config import Head

#: Dropout after fc6 and fc7, as in the FCN and torchvision classifiers.
FC_DROPOUT = 0.5


def pool_taps(model: nn.Module) -> tuple[str, str, str]:
    """Node names of the last three max-pools of `model.features` (stride 8, 16 and 32 in VGG and AlexNet)."""
    pools = [f"features.{i}" for i, m in enumerate(model.features) if isinstance(m, nn.MaxPool2d)]
    if len(pools) < 3:
        raise ValueError(f"{type(model).__name__}.features has {len(pools)} max-pools; three are needed")
    return pools[-3], pools[-2], pools[-1]


def pad_alexnet_pools(model: nn.Module) -> None:
    """Pad AlexNet's 3×3/2 max-pools by one so every input of 32 px or more reaches stride 32.

    Unpadded, they need about 63 px; padded, each halves its input (rounding up). The pooling grid moves by one cell,
    which the translation-equivariant pretrained convolutions tolerate.
    """
    for m in model.features:
        if isinstance(m, nn.MaxPool2d):
            m.padding = 1


def _linears(classifier: nn.Module) -> list[nn.Linear]:
    layers = [m for m in classifier.modules() if isinstance(m, nn.Linear)]
    if len(layers) != 3:
        raise ValueError(f"expected a classifier with fc6, fc7, fc8 Linear layers, found {len(layers)}")
    return layers


def convolutionalise(classifier: nn.Module, in_channels: int, head: Head) -> nn.Sequential:
    """fc6 → ReLU → Dropout → fc7 → ReLU → Dropout as convolutions carrying the classifier's fc6/fc7 weights.

    `head="light"` makes fc6 a 1×1 convolution whose weights are the k×k kernel summed over space (the same response
    to a spatially constant input); it is an explicit option, never the default.
    """
    fc6, fc7, _ = _linears(classifier)
    k = math.isqrt(fc6.in_features // in_channels)
    if k * k * in_channels != fc6.in_features:
        raise ValueError(f"fc6 takes {fc6.in_features} inputs, not {in_channels}×k×k")
    kernel = fc6.weight.detach().view(fc6.out_features, in_channels, k, k)
    if head == "light":
        kernel, k = kernel.sum(dim=(2, 3), keepdim=True), 1
    # Built on `meta` and given the classifier's tensors (reshaped views): no random init or copy of ~120 M weights.
    conv6 = nn.Conv2d(in_channels, fc6.out_features, k, device="meta")
    conv7 = nn.Conv2d(fc7.in_features, fc7.out_features, 1, device="meta")
    conv6.weight, conv6.bias = nn.Parameter(kernel), nn.Parameter(fc6.bias.detach())
    conv7.weight = nn.Parameter(fc7.weight.detach().view(fc7.out_features, fc7.in_features, 1, 1))
    conv7.bias = nn.Parameter(fc7.bias.detach())
    # "Same" padding, explicit because AlexNet's 6×6 kernel needs it asymmetric (2 before, 3 after).
    return nn.Sequential(OrderedDict([
        ("pad6", nn.ZeroPad2d(((k - 1) // 2, k // 2, (k - 1) // 2, k // 2))),
        ("fc6", conv6), ("relu6", nn.ReLU(inplace=True)), ("drop6", nn.Dropout(FC_DROPOUT)),
        ("fc7", conv7), ("relu7", nn.ReLU(inplace=True)), ("drop7", nn.Dropout(FC_DROPOUT)),
    ]))
