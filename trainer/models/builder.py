"""`build_model`: ModelConfig → FCN, in the order that keeps pretrained weights meaningful.

1. the torchvision classifier with its starting weights (ImageNet, none, or a classifier state-dict file);
2. backbone-specific preparation (AlexNet's pool padding);
3. the first convolution widened to `in_channels` (RGB filters kept);
4. taps located (explicit for the seeds' backbones, probed otherwise), the classifier cut after the stride-32 tap;
5. VGG/AlexNet fc6/fc7 converted to convolutions from the classifier's Linear weights;
6. the FCN-32s/16s/8s head; a weights file holding a whole FCN state dict is loaded last.

Everything random happens under `torch.manual_seed(seed)` inside a forked RNG: the build is reproducible and leaves
the caller's global RNG state untouched.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torchvision.models import get_model

from ifcn.trainer.models.backbones import BackboneSpec, get_backbone
from ifcn.trainer.models.classic import convolutionalise
from ifcn.trainer.models.fcn import FCN
from ifcn.trainer.models.first_layer import adapt_first_layer
from ifcn.trainer.models.heads import FCNHead
from ifcn.trainer.models.model_config import ModelConfig
from ifcn.trainer.models.probe import find_taps, measure_taps
from ifcn.trainer.models.transfer import mismatches, shorten
from ifcn.trainer.models.trunk import Trunk
from ifcn.trainer.models.weights import ensure_imagenet_file, read_state_dict

#: Top-level names of an FCN state dict (as opposed to a torchvision classifier's).
FCN_STATE_PREFIXES = frozenset({"backbone", "fc", "head"})


def classifier_with_weights(config: ModelConfig) -> tuple[nn.Module, dict[str, torch.Tensor] | None]:
    """The torchvision classifier carrying the starting weights, and an FCN state dict to load after the build."""
    if config.weights == "imagenet":
        return get_model(config.backbone, weights=ensure_imagenet_file(config.backbone)), None
    model = get_model(config.backbone)
    if config.weights == "none":
        return model, None
    state = read_state_dict(Path(config.weights))
    if {k.split(".", 1)[0] for k in state} <= FCN_STATE_PREFIXES:
        return model, state
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(f"--weights {config.weights} is neither a {config.backbone} classifier state dict nor an "
                         f"FCN one: missing {shorten(result.missing_keys)}; "
                         f"unexpected {shorten(result.unexpected_keys)}")
    return model, None


def _check_options(spec: BackboneSpec, model: nn.Module, config: ModelConfig) -> None:
    if config.head == "light" and not spec.conv_fc:
        raise ValueError(f"--head light (a 1×1 fc6) applies to VGG and AlexNet only, not {config.backbone!r}")
    if getattr(model, "transform_input", False) and config.in_channels != 3:
        raise ValueError(f"{config.backbone} with ImageNet weights re-normalises exactly 3 input channels "
                         f"(transform_input), so it cannot take the click channels; use --task semantic (3 channels) "
                         "or another --arch")


def build_model(config: ModelConfig, *, seed: int = 0) -> FCN:
    """The FCN that `config` describes; (B, in_channels, H, W) → logits (B, num_classes, H, W) for H, W ≥ 32."""
    spec = get_backbone(config.backbone)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model, fcn_state = classifier_with_weights(config)
        _check_options(spec, model, config)
        if spec.prepare is not None:
            spec.prepare(model)
        adapt_first_layer(model, config.in_channels, config.first_layer_init, spec.first_conv)
        if spec.taps is not None:
            taps = measure_taps(model, spec.taps(model), config.in_channels)
        else:
            taps = find_taps(model, config.in_channels, config.backbone)
        channels = [t.channels for t in taps]
        fc: nn.Module = nn.Identity()
        if spec.conv_fc:
            fc = convolutionalise(model.classifier, channels[2], config.head)
            channels[2] = fc.fc7.out_channels
        head = FCNHead((channels[0], channels[1], channels[2]), config.num_classes, config.stride, config.upsample)
        fcn = FCN(Trunk(model, taps), fc, head, config)
    if fcn_state is not None:
        bad = mismatches(fcn.state_dict(), fcn_state)
        if bad:
            raise ValueError(f"--weights {config.weights} holds an FCN for another configuration than this model, "
                             f"{config.name} with {config.in_channels} input channels and {config.num_classes} "
                             f"output(s): {shorten(bad)}. To start from another run's model (e.g. a semantic FCN "
                             f"for the interactive task, the paper's recipe), pass --init-from "
                             f"{config.weights} instead of --weights") from None
        fcn.load_state_dict(fcn_state)
    return fcn
