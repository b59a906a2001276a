"""Backbone registry keyed by torchvision model name.

The seeds' backbones (AlexNet, VGG, ResNet) have explicit taps as in the FCN paper (VGG pool3/pool4/pool5, AlexNet's
three max-pools, ResNet layer2/layer3/layer4) and VGG/AlexNet keep their classifier as convolutional fc6/fc7. Every
other torchvision classification model is accepted by name, its taps found by probing (`probe.find_taps`).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import torchvision
from torch import nn
from torchvision.models import list_models

from ifcn.trainer.models.classic import pad_alexnet_pools, pool_taps
from ifcn.trainer.models.weights import cache_path, imagenet_weights

SEED_BACKBONES = (
    "alexnet", "vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn",
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
)

#: torchvision classifiers that cannot be FCN trunks, by name prefix, with the reason shown to the user.
UNSUPPORTED = {
    "vit_": "a Vision Transformer accepts only its training size (224 px) and has no stride-8 or stride-32 features",
    "maxvit_": "MaxViT needs inputs divisible by its window grid at every stage",
    "squeezenet": "SqueezeNet has no stride-32 feature map",
    "inception_v3": "Inception v3's unpadded convolutions need inputs of at least 75 px (FCNs here take 32 px and up)",
}

HOW_TO_LIST = "list them with `ifcn-train --list-archs` or `ifcn.trainer.models.list_backbones()`"


@dataclass(frozen=True)
class BackboneSpec:
    """How to turn the torchvision classifier `name` into an FCN trunk.

    `first_conv` names the convolution that sees the image (widened to take the click channels); `taps` names the
    stride-8/16/32 nodes (None: probe them); `prepare` adjusts the classifier in place before it is cut (AlexNet's
    pool padding); `conv_fc` keeps fc6/fc7 as convolutions (VGG, AlexNet).
    """

    name: str
    description: str
    first_conv: str
    taps: Callable[[nn.Module], tuple[str, str, str]] | None = None
    prepare: Callable[[nn.Module], None] | None = None
    conv_fc: bool = False


def _resnet_taps(model: nn.Module) -> tuple[str, str, str]:
    del model  # every torchvision ResNet has the same stage names
    return "layer2", "layer3", "layer4"


#: The first convolution of each torchvision classifier family, by name prefix (its qualified module name).
FIRST_CONVS = {
    "alexnet": "features.0", "vgg": "features.0", "resnet": "conv1", "resnext": "conv1", "wide_resnet": "conv1",
    "convnext": "features.0.0", "efficientnet": "features.0.0", "mobilenet": "features.0.0", "swin": "features.0.0",
    "shufflenet": "conv1.0", "densenet": "features.conv0", "mnasnet": "layers.0", "regnet": "stem.0",
    "googlenet": "conv1.conv",
}


def first_conv_name(name: str) -> str:
    """The qualified name of backbone `name`'s first convolution (`FIRST_CONVS`, longest matching prefix)."""
    family = max((prefix for prefix in FIRST_CONVS if name.startswith(prefix)), key=len, default=None)
    if family is None:
        raise ValueError(f"backbone {name!r}: its first convolution is not known; add its family to "
                         "ifcn.trainer.models.backbones.FIRST_CONVS")
    return FIRST_CONVS[family]


def _seed_spec(name: str) -> BackboneSpec:
    first = first_conv_name(name)
    if name == "alexnet":
        return BackboneSpec(name, "seed; taps pool1/pool2/pool5 (padded pools); fc6 6×6 + fc7 1×1 as convolutions",
                            first, pool_taps, pad_alexnet_pools, conv_fc=True)
    if name.startswith("vgg"):
        return BackboneSpec(name, "seed; taps pool3/pool4/pool5; fc6 7×7 + fc7 1×1 as convolutions", first,
                            pool_taps, conv_fc=True)
    return BackboneSpec(name, "seed; taps layer2/layer3/layer4", first, _resnet_taps)


REGISTRY: dict[str, BackboneSpec] = {name: _seed_spec(name) for name in SEED_BACKBONES}
GENERIC_DESCRIPTION = "torchvision; taps probed (deepest node not bypassed by a skip, at strides 8/16/32)"


def unsupported_reason(name: str) -> str | None:
    return next((why for prefix, why in UNSUPPORTED.items() if name.startswith(prefix)), None)


@cache
def torchvision_classifiers() -> tuple[str, ...]:
    """Every classification model torchvision knows (not its detection/segmentation/video models)."""
    return tuple(list_models(module=torchvision.models))


def list_backbones() -> list[str]:
    """Usable backbone names: the seeds' set first, then the other torchvision classifiers (sorted)."""
    others = [n for n in torchvision_classifiers() if n not in REGISTRY and unsupported_reason(n) is None]
    return [*SEED_BACKBONES, *sorted(others)]


def get_backbone(name: str) -> BackboneSpec:
    """The spec of backbone `name`; a clear `ValueError` (with close matches) when it is unknown or unusable."""
    if name in REGISTRY:
        return REGISTRY[name]
    if name in torchvision_classifiers():
        reason = unsupported_reason(name)
        if reason is not None:
            raise ValueError(f"backbone {name!r} cannot be an FCN trunk: {reason}; {HOW_TO_LIST}")
        return BackboneSpec(name, GENERIC_DESCRIPTION, first_conv_name(name))
    close = difflib.get_close_matches(name.lower(), list_backbones(), n=5, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise ValueError(f"unknown backbone {name!r}; {hint}{HOW_TO_LIST}")


def available_backbones() -> dict[str, str]:
    """Backbone name → one-line description, including whether its ImageNet weights are in the local cache."""
    table = {}
    for name in list_backbones():
        spec = get_backbone(name)
        file = cache_path(imagenet_weights(name))
        cached = "cached" if file.is_file() else "not cached"
        table[name] = f"{spec.description}; imagenet weights {file.name} {cached}"
    return table


def describe_backbones() -> str:
    """The `--list-archs` text: one backbone per line."""
    width = max(map(len, list_backbones()))
    return "\n".join(f"{name:<{width}}  {text}" for name, text in available_backbones().items())
