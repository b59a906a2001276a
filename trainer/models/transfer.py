"""Starting a model from another checkpoint's weights (`--init-from`): the paper's FCN → iFCN recipe and its
generalisation to any pair of checkpoints of the same architecture.

Tensor by tensor, under the same name: equal shapes are kept; a first convolution widened (3 RGB channels to 5 or 6,
or 5 to 6 for `--prev-mask`) keeps the source's filters and gets filters for the added channels by
`first_layer.extra_channel_weights` (zero or the RGB mean), exactly as when widening an ImageNet classifier; score
and upsampling layers whose class count differs (21 semantic classes → 1 object logit) keep this model's fresh
initialisation. Anything else that differs (a tensor one side lacks, another shape) means another backbone, stride
or head, and is refused with the first names.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ifcn.trainer.models.backbones import get_backbone
from ifcn.trainer.models.first_layer import extra_channel_weights

#: Names of mismatching tensors shown in an error (the rest are counted).
SHOWN = 5
#: Tensors under this prefix depend on the class count: re-initialised when it differs.
CLASS_LAYERS = "head."


@dataclass(frozen=True)
class TransferReport:
    """Names of the target's tensors, by what happened to them."""

    kept: tuple[str, ...]
    adapted: tuple[str, ...]
    reinitialised: tuple[str, ...]

    def summary(self) -> str:
        def names(group: tuple[str, ...]) -> str:
            return f" ({', '.join(group)})" if group else ""

        return (f"kept {len(self.kept)} tensors, adapted {len(self.adapted)}{names(self.adapted)}, "
                f"re-initialised {len(self.reinitialised)}{names(self.reinitialised)}")


def _shape(t: torch.Tensor | None) -> str:
    return "absent" if t is None else "×".join(map(str, t.shape)) or "scalar"


def mismatches(target: dict[str, torch.Tensor], source: dict[str, torch.Tensor],
               allowed: frozenset[str] = frozenset()) -> list[str]:
    """`name (file SHAPE, model SHAPE)` for every tensor present on one side only or shaped differently, except the
    names in `allowed`; sorted so that the first ones are the earliest layers."""
    names = sorted(set(target) | set(source))
    return [f"{n} (file {_shape(source.get(n))}, model {_shape(target.get(n))})" for n in names
            if n not in allowed and (n not in target or n not in source or target[n].shape != source[n].shape)]


def shorten(items: list[str]) -> str:
    """The first `SHOWN` items, and how many more there are."""
    more = f" (+{len(items) - SHOWN} more)" if len(items) > SHOWN else ""
    return ", ".join(items[:SHOWN]) + more


def _widened(conv_weight: torch.Tensor, source: torch.Tensor) -> bool:
    """Whether `source` is the same first convolution with fewer input channels (RGB first in both)."""
    return (3 <= source.shape[1] < conv_weight.shape[1] and source.shape[0] == conv_weight.shape[0]
            and source.shape[2:] == conv_weight.shape[2:])


def transfer_weights(model: nn.Module, source: dict[str, torch.Tensor], first_layer_init: str) -> TransferReport:
    """Load `source` (a state dict) into `model` by the rules above; ValueError listing the first mismatches when the
    two are not the same architecture. `model` is only changed when the whole transfer is possible."""
    target = model.state_dict()
    conv_name = f"backbone.body.{get_backbone(model.config.backbone).first_conv}.weight"
    adapted = ((conv_name,) if conv_name in source and conv_name in target
               and _widened(target[conv_name], source[conv_name]) else ())
    reinitialised = tuple(n for n in target if n.startswith(CLASS_LAYERS) and n in source
                          and target[n].shape != source[n].shape and target[n].dim() == source[n].dim())
    bad = mismatches(target, source, frozenset(adapted + reinitialised))
    if bad:
        raise ValueError(f"{len(bad)} tensor(s) do not match: {shorten(bad)}")
    new_state = {n: source[n] for n in target if n not in reinitialised}
    for name in adapted:
        kept = source[name].to(target[name].dtype)
        extra = extra_channel_weights(kept[:, :3], target[name].shape[1] - kept.shape[1], first_layer_init)
        new_state[name] = torch.cat([kept, extra], dim=1)
    model.load_state_dict(new_state, strict=False)
    kept = tuple(n for n in target if n not in adapted and n not in reinitialised)
    return TransferReport(kept, adapted, reinitialised)
